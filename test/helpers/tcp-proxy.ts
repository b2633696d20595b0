import net from 'node:net';

/**
 * A TCP proxy in front of a real service, so a test can take the service away from one client
 * (and give it back) without stopping the server other test files share.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  /** Holds every reply from the service this long: a slow database, on demand. */
  delayMs = 0;
  /** Bytes clients sent toward the service, all connections together: did a client call it? */
  bytesToService = 0;
  private frozen = false;
  /** Bytes held while frozen, per direction of each connection, in arrival order. */
  private readonly held: { to: net.Socket; chunk: Uint8Array }[] = [];

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.on('data', (chunk: Uint8Array) => {
        this.bytesToService += chunk.byteLength;
        this.forward(upstream, chunk);
      });
      upstream.on('data', (chunk: Uint8Array) => {
        if (this.delayMs === 0) this.forward(client, chunk);
        else setTimeout(() => this.forward(client, chunk), this.delayMs);
      });
      client.on('end', () => upstream.end());
      upstream.on('end', () => client.end());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /**
   * Stops forwarding in both directions while every connection stays open and new ones are
   * accepted: a service that hangs (SIGSTOP) rather than goes away. Bytes are held, not lost.
   */
  freeze(): void {
    this.frozen = true;
  }

  /** Delivers what was held while frozen, in order, and forwards again. */
  unfreeze(): void {
    this.frozen = false;
    for (const { to, chunk } of this.held.splice(0)) if (to.writable) to.write(chunk);
  }

  private forward(to: net.Socket, chunk: Uint8Array): void {
    if (this.frozen) this.held.push({ to, chunk });
    else if (to.writable) to.write(chunk);
  }

  /** Cuts every connection and refuses new ones until start() is called again. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
