// Unit specs live beside the code (src/, *.spec.ts); e2e specs in test/ (*.e2e-spec.ts).
const common = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  testEnvironment: 'node',
};
module.exports = {
  // A global option (ignored inside projects): e2e specs drive real sshd processes.
  testTimeout: 120000,
  projects: [
    { ...common, displayName: 'unit', rootDir: 'src', testRegex: '.*\\.spec\\.ts$' },
    {
      ...common,
      displayName: 'e2e',
      rootDir: '.',
      testRegex: 'test/.*\\.e2e-spec\\.ts$',
    },
  ],
};
