/**
 * One config as DescribeConfigs reports it, and Kafka's numbers for its resource types,
 * sources and types (Kafka's ConfigResource.Type, DescribeConfigsResponse.ConfigSource and
 * ConfigType). The topic table (topic-config.ts) and the broker table (broker-config.ts)
 * produce these; configs.ts puts them on the wire.
 */

/** Kafka's ConfigResource.Type. */
export const ConfigResourceType = { Topic: 2, Broker: 4, BrokerLogger: 8, ClientMetrics: 16, Group: 32 } as const;

/** Kafka's DescribeConfigsResponse.ConfigSource, in the order Kafka ranks synonyms. */
export const ConfigSource = {
  DynamicTopic: 1,
  DynamicBroker: 2,
  DynamicDefaultBroker: 3,
  StaticBroker: 4,
  Default: 5,
} as const;
export type ConfigSource = (typeof ConfigSource)[keyof typeof ConfigSource];

/** Kafka's DescribeConfigsResponse.ConfigType (DescribeConfigs v3+). */
export const ConfigType = { BOOLEAN: 1, STRING: 2, INT: 3, SHORT: 4, LONG: 5, DOUBLE: 6, LIST: 7, CLASS: 8, PASSWORD: 9 } as const;
export type ConfigTypeName = keyof typeof ConfigType;

export interface ConfigSynonym {
  readonly name: string;
  readonly value: string;
  readonly source: ConfigSource;
}

export interface ConfigEntry {
  readonly name: string;
  readonly value: string;
  readonly source: ConfigSource;
  readonly readOnly: boolean;
  readonly type: ConfigTypeName;
  readonly documentation: string;
  /** Where the value comes from, highest precedence first (the entry itself included). */
  readonly synonyms: readonly ConfigSynonym[];
}
