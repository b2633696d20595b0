import net from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that counts the statements clients send: simple-protocol
 * `Q` messages and extended-protocol `E` (Execute) messages. It works for any client library,
 * so every contender is measured the same way.
 */
export class PgCountingProxy {
  statements = 0;
  port = 0;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      let pending = new Uint8Array(0);
      let startup = true;
      const int32 = (bytes: Uint8Array, at: number) =>
        new DataView(bytes.buffer, bytes.byteOffset + at, 4).getInt32(0);
      client.on('data', (chunk: Uint8Array) => {
        upstream.write(chunk);
        const joined = new Uint8Array(pending.length + chunk.length);
        joined.set(pending);
        joined.set(chunk, pending.length);
        let offset = 0;
        for (;;) {
          const left = joined.length - offset;
          if (startup) {
            if (left < 4 || left < int32(joined, offset)) break;
            offset += int32(joined, offset);
            startup = false;
            continue;
          }
          if (left < 5) break;
          const length = int32(joined, offset + 1);
          if (left < length + 1) break;
          const type = String.fromCharCode(joined[offset]!);
          if (type === 'Q' || type === 'E') this.statements += 1;
          offset += length + 1;
        }
        pending = joined.slice(offset);
      });
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
