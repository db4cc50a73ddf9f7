/**
 * The Arrow body schemas as protocol.json writes them (`arrow`: coords, scrolls, shards),
 * turned into arrow-js fields for the encoder and checked against what a decoded stream
 * carries. The field names, their order, which are optional and their types live in the
 * JSON only; the Python client derives its pyarrow schemas from the same entries.
 */
import { Binary, DataType, Field, FixedSizeList, List, Type, Uint32, Uint8 } from 'apache-arrow';
import schema from '../protocol/protocol.json';

/** The three body schemas. */
export type BodySchema = keyof typeof schema.arrow;

/** One field as protocol.json declares it. */
export interface FieldSpec {
  name: string;
  type: string;
  optional: boolean;
}

/** Each body schema's fields, in order. */
export const BODY_FIELDS: Readonly<Record<BodySchema, readonly FieldSpec[]>> = Object.freeze(
  Object.fromEntries(Object.entries(schema.arrow).map(([body, s]) => [body, s.fields.map((f) => ({
    name: f.name, type: f.type, optional: (f as { optional?: boolean }).optional === true,
  }))])) as Record<BodySchema, FieldSpec[]>,
);

/** The protocol's type spelling (`uint8`, `uint32`, `binary`, `list<T>`, `fixed_size_list<T>[n]`) as an arrow-js type. */
export function arrowType(spec: string): DataType {
  if (spec === 'uint8') return new Uint8();
  if (spec === 'uint32') return new Uint32();
  if (spec === 'binary') return new Binary();
  const fixed = /^fixed_size_list<(.+)>\[(\d+)\]$/.exec(spec);
  if (fixed) return new FixedSizeList(Number(fixed[2]), new Field('item', arrowType(fixed[1]), false));
  const list = /^list<(.+)>$/.exec(spec);
  if (list) return new List(new Field('item', arrowType(list[1]), false));
  throw new Error(`protocol.json names an Arrow type this codec does not know: ${spec}`);
}

/** An arrow-js type in the protocol's spelling (anything else by arrow-js's own name). */
export function typeSpelling(t: DataType): string {
  if (DataType.isInt(t) && !t.isSigned && (t.bitWidth === 8 || t.bitWidth === 32)) return `uint${t.bitWidth}`;
  if (t.typeId === Type.Binary) return 'binary';
  if (t.typeId === Type.List) return `list<${typeSpelling(t.children[0].type)}>`;
  if (DataType.isFixedSizeList(t)) return `fixed_size_list<${typeSpelling(t.children[0].type)}>[${t.listSize}]`;
  return String(t);
}

/** The arrow-js field `name` of a body schema (non-nullable, as the protocol says). */
export function field(body: BodySchema, name: string): Field {
  return new Field(name, typeOf(body, name), false);
}

/** The arrow-js type of field `name` of a body schema. */
export function typeOf(body: BodySchema, name: string): DataType {
  const f = BODY_FIELDS[body].find((x) => x.name === name);
  if (!f) throw new Error(`protocol.json's ${body} schema has no field ${name}`);
  return arrowType(f.type);
}

/** The protocol type of a field name (the same in every body that has it), or undefined. */
export function specOf(name: string): string | undefined {
  for (const fields of Object.values(BODY_FIELDS)) for (const f of fields) if (f.name === name) return f.type;
  return undefined;
}
