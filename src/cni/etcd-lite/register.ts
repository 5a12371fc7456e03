/**
 * Makes every later `import … from 'etcd3'` in this process load the JSON-gateway client
 * (./client.ts) instead. The plugin's main calls it just before the store is first loaded
 * (modules loaded earlier keep what they had); TORTIE_CNI_ETCD_CLIENT=grpc keeps the real
 * `etcd3`. Idempotence is the caller's: the plugin opens the store once per process.
 */
import { register } from 'node:module';

export function useLiteEtcdClient(): boolean {
  if (process.env.TORTIE_CNI_ETCD_CLIENT === 'grpc') return false;
  register(new URL('./hooks.js', import.meta.url), {
    data: { clientUrl: new URL('./client.js', import.meta.url).href },
  });
  return true;
}
