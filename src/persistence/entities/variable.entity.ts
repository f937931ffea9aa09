import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs, jsonText } from '../columns';

/** A runtime variable, scoped per userId (`default` when a job has none). */
@Entity('variables')
export class VariableEntity {
  @PrimaryColumn({ type: 'varchar', length: 200 }) userId!: string;
  @PrimaryColumn({ type: 'varchar', length: 200 }) key!: string;
  @Column({ type: 'text', transformer: jsonText }) value!: unknown;
  @Column({ type: 'bigint', transformer: epochMs }) updatedAt!: number;
}
