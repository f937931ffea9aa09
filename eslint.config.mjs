import tseslint from 'typescript-eslint';

export default tseslint.config(
  // src/client/schema.d.ts is generated (npm run client); a spec fails when it is stale.
  { ignores: ['dist/**', 'node_modules/**', 'src/runner-cache/remote/**', 'src/client/schema.d.ts'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
);
