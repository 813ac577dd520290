// Shared decoding of a verified body: strict UTF-8, then JSON, then the envelope's schema.
import type { z } from 'zod';
import { PayloadError } from '../errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function decodeBody<T extends z.ZodType>(raw: Uint8Array, schema: T): { text: string; value: z.infer<T> } {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new PayloadError('body is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PayloadError('body is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new PayloadError(`body is not an event: ${where}${issue?.message ?? 'invalid'}`);
  }
  return { text, value: parsed.data };
}
