// The Content-Type of an answer per output format, as ClickHouse's output formats name theirs
// (IOutputFormat::getContentType of each format, ClickHouse 24+).

import type { Settings } from '../engine/types.js';

const BINARY = new Set([
  'native', 'rowbinary', 'rowbinarywithnames', 'rowbinarywithnamesandtypes', 'rowbinarywithdefaults', 'parquet', 'arrow',
  'arrowstream', 'orc', 'avro', 'protobuf', 'protobufsingle', 'protobuflist', 'capnproto', 'msgpack', 'bsoneachrow', 'npy',
]);

/** JSON documents: one object per answer. */
const JSON_DOCUMENTS = new Set([
  'json', 'jsonstrings', 'jsoncompact', 'jsoncompactstrings', 'jsoncolumns', 'jsoncolumnswithmetadata', 'jsoncompactcolumns',
  'jsonobjecteachrow',
]);

/** One JSON object per line (JSONEachRowRowOutputFormat and its variants). */
const NDJSON = new Set([
  'jsoneachrow', 'jsonlines', 'ndjson', 'jsonstringseachrow', 'jsoneachrowwithprogress', 'jsonstringseachrowwithprogress', 'prettyjsoneachrow', 'prettyjsonlines', 'prettyndjson',
]);

function truthy(v: string | number | undefined): boolean {
  return v !== undefined && String(v) !== '0' && String(v).toLowerCase() !== 'false';
}

/** The Content-Type ClickHouse sends for `format` (the request's settings may change it, as they do there). */
export function contentType(format: string, settings: Settings = {}): string {
  const f = format.toLowerCase();
  if (NDJSON.has(f)) return truthy(settings['output_format_json_array_of_rows']) ? 'application/json; charset=UTF-8' : 'application/x-ndjson; charset=UTF-8';
  if (JSON_DOCUMENTS.has(f)) return 'application/json; charset=UTF-8';
  if (f === 'csv') return 'text/csv; charset=UTF-8; header=absent';
  if (f === 'csvwithnames' || f === 'csvwithnamesandtypes') return 'text/csv; charset=UTF-8; header=present';
  if (/^(tabseparated|tsv)/.test(f)) return 'text/tab-separated-values; charset=UTF-8';
  if (f === 'xml') return 'application/xml; charset=UTF-8';
  if (BINARY.has(f)) return 'application/octet-stream';
  return 'text/plain; charset=UTF-8';
}
