// What every webhook source gives the ingest route: a verified event ready to store.

export type VerifiedEvent = {
  eventId: string;
  type: string;
  apiVersion: string | null;
  account: string | null;
  livemode: boolean | null;
  /** Unix seconds. */
  created: number | null;
  /** The verified body as text; Postgres parses it into jsonb (cast via text: a string bound
   * straight to a jsonb parameter would be stored as a JSON string). */
  body: string;
};

/** Request headers by lower-case name: a fetch Headers, or Node's IncomingMessage headers. */
export type HeaderReader = { get(name: string): string | null };

export interface Source {
  readonly name: string;
  /** Throws SignatureError or PayloadError; never touches the database. */
  verify(raw: Uint8Array, headers: HeaderReader, nowMs: number): VerifiedEvent;
}
