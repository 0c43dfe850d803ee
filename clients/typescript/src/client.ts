// A small typed client for the Conduit GraphQL API.
//
// `request(document, variables)` takes a document generated in src/gql/ and
// returns its typed result. It sends the document text, or, in persisted
// mode, only the document's sha256 hash (Apollo's persisted-query extension),
// which servers holding the document (trusted documents, or automatic
// persisted queries after a first registration) execute without the text.
import { createHash } from 'node:crypto';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { Kind, print } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export type PersistedMode =
  /** Send the document text. */
  | 'off'
  /** Send only the hash; a server that does not know it answers PERSISTED_QUERY_NOT_FOUND. */
  | 'hash-only'
  /** Automatic persisted queries: the hash first, the text too when the server does not know it yet. */
  | 'apq';

export interface ClientOptions {
  /** The GraphQL endpoint, e.g. http://127.0.0.1:8080/graphql. */
  url: string;
  /** Access token, sent as `Authorization: Bearer <token>`. */
  token?: string | null;
  persisted?: PersistedMode;
  /**
   * The persisted-document manifest (hash -> document text) written by
   * codegen. When given, the text sent for a document is the manifest's,
   * so it is exactly the text the hash was made from; otherwise the
   * document is printed.
   */
  manifest?: Readonly<Record<string, string>>;
  fetch?: typeof fetch;
  /**
   * Called when the server ignored the token (the request was still
   * answered, as anonymous): the place to refresh or to sign the user out.
   */
  onTokenRejected?: (rejection: TokenRejection) => void;
  /** Where to record what was sent; shared by the clients `withToken` makes. */
  sent?: SentRequest[];
}

export interface GraphQLErrorItem {
  message: string;
  path?: ReadonlyArray<string | number>;
  locations?: ReadonlyArray<{ line: number; column: number }>;
  extensions?: { code?: string; [key: string]: unknown };
}

/** A request that came back with GraphQL errors, or with no usable answer. */
export class ConduitError extends Error {
  override readonly name = 'ConduitError';
  constructor(
    /** `extensions.code` of the first error, or `HTTP_<status>` when there was no GraphQL answer. */
    readonly code: string,
    message: string,
    readonly status: number,
    readonly errors: readonly GraphQLErrorItem[],
    readonly operationName: string | undefined,
  ) {
    super(message);
  }
}

/**
 * Why the server ignored the access token and served the request as
 * anonymous: `TOKEN_EXPIRED` (refresh it), `SESSION_REVOKED` or
 * `TOKEN_INVALID` (sign in again). From the response's top-level
 * `extensions.authentication`.
 */
export interface TokenRejection {
  code: 'TOKEN_EXPIRED' | 'SESSION_REVOKED' | 'TOKEN_INVALID';
  message: string;
}

/** What the client sent, for tests that check the wire format. */
export interface SentRequest {
  operationName: string | undefined;
  withQuery: boolean;
  withHash: boolean;
  status: number;
  /** Set when the token was ignored (see `TokenRejection`). */
  tokenRejection?: TokenRejection;
  /** The `WWW-Authenticate` header, when the server sent one. */
  challenge?: string;
}

type Meta = { __meta__?: { hash?: string } };
// Variables may be left out when the operation requires none.
type VariablesArgument<TVariables> = {} extends TVariables ? [variables?: TVariables] : [variables: TVariables];

/** The hex digest of a `sha256:<hex>` document hash, as the persisted-query extension carries it. */
export function sha256Hex(hash: string): string {
  return hash.startsWith('sha256:') ? hash.slice('sha256:'.length) : hash;
}

function operationNameOf(document: TypedDocumentNode<unknown, unknown>): string | undefined {
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) return definition.name?.value;
  }
  return undefined;
}

export class ConduitClient {
  token: string | null;
  readonly sent: SentRequest[];
  private readonly url: string;
  private readonly persisted: PersistedMode;
  private readonly manifest: Readonly<Record<string, string>> | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly onTokenRejected: ((rejection: TokenRejection) => void) | undefined;

  constructor(options: ClientOptions) {
    this.onTokenRejected = options.onTokenRejected;
    this.url = options.url;
    this.token = options.token ?? null;
    this.persisted = options.persisted ?? 'off';
    this.manifest = options.manifest;
    this.fetchImpl = options.fetch ?? fetch;
    this.sent = options.sent ?? [];
  }

  /** The same server and mode, another user. */
  withToken(token: string | null): ConduitClient {
    return new ConduitClient({
      url: this.url,
      token,
      persisted: this.persisted,
      fetch: this.fetchImpl,
      sent: this.sent,
      ...(this.onTokenRejected ? { onTokenRejected: this.onTokenRejected } : {}),
      ...(this.manifest ? { manifest: this.manifest } : {}),
    });
  }

  async request<TResult, TVariables>(
    document: TypedDocumentNode<TResult, TVariables>,
    ...[variables]: VariablesArgument<TVariables>
  ): Promise<TResult> {
    const operationName = operationNameOf(document as TypedDocumentNode<unknown, unknown>);
    const text = this.textOf(document as TypedDocumentNode<unknown, unknown>);
    if (this.persisted === 'off') {
      return this.send<TResult>({ query: text, variables, operationName }, operationName);
    }
    const persistedQuery = { version: 1, sha256Hash: this.hashOf(document as TypedDocumentNode<unknown, unknown>, text) };
    try {
      return await this.send<TResult>({ variables, operationName, extensions: { persistedQuery } }, operationName);
    } catch (error) {
      if (this.persisted !== 'apq' || !(error instanceof ConduitError) || error.code !== 'PERSISTED_QUERY_NOT_FOUND') {
        throw error;
      }
    }
    return this.send<TResult>({ query: text, variables, operationName, extensions: { persistedQuery } }, operationName);
  }

  /**
   * Runs a subscription over a WebSocket (the `graphql-ws` client and
   * protocol, on the same URL), authenticated with the client's token:
   * each event's data, until the caller stops iterating. In persisted
   * mode only the document's hash is sent.
   */
  subscribe<TResult, TVariables>(
    document: TypedDocumentNode<TResult, TVariables>,
    ...[variables]: VariablesArgument<TVariables>
  ): AsyncIterableIterator<TResult> {
    const text = this.textOf(document as TypedDocumentNode<unknown, unknown>);
    const hash = this.hashOf(document as TypedDocumentNode<unknown, unknown>, text);
    const socket = createClient({
      url: this.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: this.token ? { authorization: `Bearer ${this.token}` } : {},
      retryAttempts: 0,
    });
    const events = socket.iterate<TResult>({
      query: this.persisted === 'hash-only' ? '' : text,
      variables: (variables ?? {}) as Record<string, unknown>,
      operationName: operationNameOf(document as TypedDocumentNode<unknown, unknown>) ?? null,
      ...(this.persisted === 'off' ? {} : { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }),
    });
    const close = async (): Promise<void> => {
      await events.return?.();
      await socket.dispose();
    };
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next(): Promise<IteratorResult<TResult>> {
        const event = await events.next();
        if (event.done) {
          await socket.dispose();
          return { done: true, value: undefined };
        }
        const first = event.value.errors?.[0];
        if (first || event.value.data == null) {
          await close();
          const code = typeof first?.extensions?.code === 'string' ? first.extensions.code : 'UNKNOWN';
          throw new ConduitError(code, `subscription: ${first?.message ?? 'no data'} (${code})`, 0, event.value.errors ?? [], undefined);
        }
        return { done: false, value: event.value.data };
      },
      async return(): Promise<IteratorResult<TResult>> {
        await close();
        return { done: true, value: undefined };
      },
    };
  }

  private hashOf(document: TypedDocumentNode<unknown, unknown>, text: string): string {
    const hash = (document as Meta).__meta__?.hash;
    if (hash) return sha256Hex(hash);
    return createHash('sha256').update(text).digest('hex');
  }

  private textOf(document: TypedDocumentNode<unknown, unknown>): string {
    const hash = (document as Meta).__meta__?.hash;
    const fromManifest = hash ? this.manifest?.[hash] : undefined;
    return fromManifest ?? print(document);
  }

  private async send<TResult>(
    body: { query?: string; variables: unknown; operationName: string | undefined; extensions?: unknown },
    operationName: string | undefined,
  ): Promise<TResult> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let response: Response;
    try {
      response = await this.fetchImpl(this.url, { method: 'POST', headers, body: JSON.stringify(body) });
    } catch (error) {
      throw new ConduitError('NETWORK_ERROR', `${operationName ?? 'request'}: ${String(error)}`, 0, [], operationName);
    }
    const raw = await response.text();
    let answer: { data?: TResult | null; errors?: GraphQLErrorItem[]; extensions?: { authentication?: TokenRejection } } | undefined;
    try {
      answer = JSON.parse(raw) as typeof answer;
    } catch {
      answer = undefined;
    }
    const tokenRejection = answer?.extensions?.authentication;
    const challenge = response.headers.get('www-authenticate');
    this.sent.push({
      operationName,
      withQuery: body.query !== undefined,
      withHash: body.extensions !== undefined,
      status: response.status,
      ...(tokenRejection ? { tokenRejection } : {}),
      ...(challenge ? { challenge } : {}),
    });
    if (tokenRejection) this.onTokenRejected?.(tokenRejection);
    const errors = answer?.errors ?? [];
    const first = errors[0];
    if (first) {
      const code = typeof first.extensions?.code === 'string' ? first.extensions.code : 'UNKNOWN';
      throw new ConduitError(
        code,
        `${operationName ?? 'request'}: ${first.message} (${code}, HTTP ${response.status})`,
        response.status,
        errors,
        operationName,
      );
    }
    if (!response.ok || answer?.data == null) {
      throw new ConduitError(
        `HTTP_${response.status}`,
        `${operationName ?? 'request'}: HTTP ${response.status}: ${raw.slice(0, 300)}`,
        response.status,
        [],
        operationName,
      );
    }
    return answer.data;
  }
}
