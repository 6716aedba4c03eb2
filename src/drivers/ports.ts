/** Free host ports for clones of a container that publishes ports. */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** A port nothing listens on right now, chosen by the kernel. */
export function freePort(protocol: string, host = '0.0.0.0'): Promise<number> {
  return new Promise((resolve, reject) => {
    if (protocol === 'udp') {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, host, () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
      return;
    }
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}
