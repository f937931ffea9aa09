import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs, jsonText } from '../columns';

@Entity('servers')
export class ServerEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id!: string;
  @Column({ type: 'varchar', length: 200, unique: true }) name!: string;
  @Column({ type: 'varchar', length: 255 }) host!: string;
  @Column({ type: 'integer' }) port!: number;
  @Column({ type: 'varchar', length: 64 }) username!: string;
  @Column({ type: 'varchar', length: 16 }) authType!: 'key' | 'password';
  /** AES-256-GCM sealed JSON of {privateKey?, passphrase?, password?}. */
  @Column({ type: 'text' }) credentials!: string;
  /** AES-256-GCM sealed sudo password for `become` (AAD `become:<id>`); null: none. */
  @Column({ type: 'text', nullable: true }) becomePassword?: string | null;
  /** Pinned host key as `SHA256:…`; null until first contact under trust-on-first-use. */
  @Column({ type: 'varchar', length: 100, nullable: true }) hostKeyFingerprint!: string | null;
  /** Key type when known (`ssh-ed25519`, …), so the handshake asks for that type. */
  @Column({ type: 'varchar', length: 64, nullable: true }) hostKeyType!: string | null;
  /** When the key was pinned, and how: `given` by a caller, or `tofu` (first contact). */
  @Column({ type: 'bigint', nullable: true, transformer: epochMs })
  hostKeyPinnedAt!: number | null;
  @Column({ type: 'varchar', length: 8, nullable: true }) hostKeySource!: 'given' | 'tofu' | null;
  @Column({ type: 'text', transformer: jsonText }) tags!: string[];
  @Column({ type: 'varchar', length: 255, nullable: true }) baseDir!: string | null;
  /** The inventory server this one is reached through (ProxyJump); null: directly. */
  @Column({ type: 'varchar', length: 36, nullable: true }) jumpServerId!: string | null;
  @Column({ type: 'bigint', transformer: epochMs }) createdAt!: number;
  @Column({ type: 'bigint', transformer: epochMs }) updatedAt!: number;
}
