/**
 * Module resolve hook (node:module register) that makes `import … from 'etcd3'` load
 * ./client.js in the CNI plugin process. See client.ts for why.
 */
interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

let clientUrl: string | undefined;

export function initialize(data: { clientUrl: string }): void {
  clientUrl = data.clientUrl;
}

export async function resolve(
  specifier: string,
  context: ResolveContext,
  nextResolve: NextResolve,
): Promise<{ url: string; shortCircuit?: boolean; format?: string }> {
  if (specifier === 'etcd3' && clientUrl !== undefined) {
    return { url: clientUrl, shortCircuit: true, format: 'module' };
  }
  return nextResolve(specifier, context);
}
