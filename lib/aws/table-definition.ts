import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { TABLE } from './table-design.ts';

/**
 * The physical shape of the table — keys, attribute types, the byState index — derived once from table-design.ts. The
 * CDK stack builds its Table from TABLE_SCHEMA and the tests create the same table in dynalite from createTableInput,
 * so the table the adapter is tested against is the table that gets deployed.
 */
export interface KeyAttribute {
  readonly name: string;
  readonly type: 'S';
}

export interface TableSchema {
  readonly partitionKey: KeyAttribute;
  readonly sortKey: KeyAttribute;
  readonly timeToLiveAttribute: string;
  readonly billingMode: 'PAY_PER_REQUEST';
  readonly globalSecondaryIndexes: readonly {
    readonly indexName: string;
    readonly partitionKey: KeyAttribute;
    readonly sortKey: KeyAttribute;
    /** ALL: listing tasks of a state must return whole records without a read per task. */
    readonly projectionType: 'ALL';
  }[];
}

export const TABLE_SCHEMA: TableSchema = {
  partitionKey: { name: TABLE.partitionKey, type: 'S' },
  sortKey: { name: TABLE.sortKey, type: 'S' },
  timeToLiveAttribute: TABLE.ttlAttribute,
  // Idle costs nothing and a burst of tasks needs no capacity planning.
  billingMode: 'PAY_PER_REQUEST',
  globalSecondaryIndexes: [
    {
      indexName: TABLE.byState.indexName,
      partitionKey: { name: TABLE.byState.partitionKey, type: 'S' },
      sortKey: { name: TABLE.byState.sortKey, type: 'S' },
      projectionType: 'ALL',
    },
  ],
};

/**
 * CreateTable input for `tableName`. Point-in-time recovery, encryption and TTL are separate API calls (the stack sets
 * them; dynalite does not implement them), so they are not part of this input.
 */
export function createTableInput(tableName: string, schema: TableSchema = TABLE_SCHEMA): CreateTableCommandInput {
  const keyAttributes = [schema.partitionKey, schema.sortKey, ...schema.globalSecondaryIndexes.flatMap((g) => [
    g.partitionKey,
    g.sortKey,
  ])];
  const unique = [...new Map(keyAttributes.map((a) => [a.name, a])).values()];
  return {
    TableName: tableName,
    BillingMode: schema.billingMode,
    AttributeDefinitions: unique.map((a) => ({ AttributeName: a.name, AttributeType: a.type })),
    KeySchema: [
      { AttributeName: schema.partitionKey.name, KeyType: 'HASH' },
      { AttributeName: schema.sortKey.name, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: schema.globalSecondaryIndexes.map((g) => ({
      IndexName: g.indexName,
      KeySchema: [
        { AttributeName: g.partitionKey.name, KeyType: 'HASH' },
        { AttributeName: g.sortKey.name, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: g.projectionType },
    })),
  };
}
