/** Limits of one listening port, HTTP or gRPC (their defaults are in `server_config.ts`). */
export interface ConnectionLimits {
  /**
   * Time a new connection has to start talking: finish its TLS handshake and
   * send a request's headers (HTTP/1.1) or the HTTP/2 preface (gRPC).
   */
  headerTimeoutMs: number;
  /**
   * Time an open connection may sit idle: between a response and the next
   * request (HTTP/1.1), or with no call open (gRPC).
   */
  idleTimeoutMs: number;
  /** Connections the port holds at once; more are closed as they arrive. */
  maxConnections: number;
}
