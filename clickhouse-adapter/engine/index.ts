// RaftHouse's ClickHouse engine layer: one interface, two engines (embedded chdb, HTTP server).
export type {
  Capabilities, CapabilityName, ClickHouseEngine, EngineKind, ExecOptions, InsertOptions, InsertResult, QueryOptions,
  Settings, SettingValue,
} from './types.js';
export { ClickHouseError, EngineError, EngineUnsupportedError, clickHouseError, parseClickHouseError } from './errors.js';
export { CODES, codeName, exceptionText, type CodeName } from './codes.js';
export type { EngineErrorCode } from './errors.js';
export { CAPABILITY_INFO, MODE_REQUIREMENTS, probeCapabilities, requireCapabilities, parseVersion } from './capabilities.js';
export { openEmbedded } from './embedded.js';
export type { EmbeddedOptions } from './embedded.js';
export { openServer } from './server.js';
export type { ServerOptions } from './server.js';
export { parseInsert, quoteIdent, quoteString } from './sql.js';
