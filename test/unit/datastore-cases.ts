/**
 * Malformed resources, one per row: the object, the field the refusal must name, and a
 * piece of the reason. Shared by test/unit/datastore-invalid.test.ts (schemas alone)
 * and test/e2e/datastore.test.ts (a real etcd, which must stay unchanged).
 */

export interface InvalidCase {
  readonly name: string;
  readonly object: unknown;
  /** The field path the message names ("" for the whole object). */
  readonly path: string;
  /** A fragment of the reason. */
  readonly reason: string;
}

const T = 'tortie.io/v1';
const obj = (
  kind: string,
  metadata: unknown,
  spec?: unknown,
  extra: Record<string, unknown> = {},
) => ({
  apiVersion: T,
  kind,
  metadata,
  ...(spec === undefined ? {} : { spec }),
  ...extra,
});
const pool = (spec: Record<string, unknown>, metadata: unknown = { name: 'pool-a' }) =>
  obj('IPPool', metadata, { cidr: '10.70.0.0/16', ...spec });
const wep = (
  spec: Record<string, unknown>,
  metadata: unknown = { name: 'wep-a', namespace: 'prod' },
) => obj('WorkloadEndpoint', metadata, { node: 'node-1', interfaceName: 'tort1', ...spec });
const hep = (spec: Record<string, unknown>) =>
  obj('HostEndpoint', { name: 'hep-a' }, { node: 'node-1', ...spec });
const peer = (spec: Record<string, unknown>) => obj('BGPPeer', { name: 'peer-a' }, spec);
const policy = (spec: Record<string, unknown>) =>
  obj('NetworkPolicy', { name: 'pol-a', namespace: 'prod' }, spec);

export const INVALID_CASES: readonly InvalidCase[] = [
  // --- envelope -----------------------------------------------------------------------
  { name: 'not an object', object: 'IPPool', path: '', reason: 'expected an object' },
  {
    name: 'a list instead of an object',
    object: [pool({})],
    path: '',
    reason: 'expected an object',
  },
  {
    name: 'apiVersion missing',
    object: { kind: 'IPPool', metadata: { name: 'x' } },
    path: 'apiVersion',
    reason: 'required field is missing',
  },
  {
    name: 'unknown apiVersion',
    object: { ...pool({}), apiVersion: 'projectcalico.org/v2' },
    path: 'apiVersion',
    reason: 'unknown apiVersion "projectcalico.org/v2" (did you mean projectcalico.org/v3?)',
  },
  {
    name: 'kind missing',
    object: { apiVersion: T, metadata: { name: 'x' } },
    path: 'kind',
    reason: 'required field is missing',
  },
  {
    name: 'unknown kind',
    object: obj('IPPools', { name: 'x' }, {}),
    path: 'kind',
    reason: 'unknown kind "IPPools"',
  },
  {
    name: 'unknown top-level field',
    object: { ...pool({}), specs: {} },
    path: 'specs',
    reason: 'unknown field (did you mean spec?)',
  },
  {
    name: 'metadata missing',
    object: { apiVersion: T, kind: 'IPPool', spec: { cidr: '10.0.0.0/8' } },
    path: 'metadata',
    reason: 'required field is missing',
  },
  // --- metadata -----------------------------------------------------------------------
  {
    name: 'name missing',
    object: pool({}, {}),
    path: 'metadata.name',
    reason: 'required field is missing',
  },
  {
    name: 'name with upper case',
    object: pool({}, { name: 'Pool-A' }),
    path: 'metadata.name',
    reason: 'is not a valid name',
  },
  {
    name: 'name with a slash',
    object: pool({}, { name: 'a/b' }),
    path: 'metadata.name',
    reason: 'is not a valid name',
  },
  {
    name: 'unknown metadata field',
    object: pool({}, { name: 'p', owner: 'me' }),
    path: 'metadata.owner',
    reason: 'unknown field',
  },
  {
    name: 'namespace on a cluster kind',
    object: pool({}, { name: 'p', namespace: 'prod' }),
    path: 'metadata.namespace',
    reason: 'cluster-scoped',
  },
  {
    name: 'invalid namespace',
    object: wep({}, { name: 'w', namespace: 'Prod_1' }),
    path: 'metadata.namespace',
    reason: 'is not a DNS label',
  },
  {
    name: 'label key with a space',
    object: pool({}, { name: 'p', labels: { 'a b': 'c' } }),
    path: 'metadata.labels["a b"]',
    reason: 'label key "a b"',
  },
  {
    name: 'label value too long',
    object: pool({}, { name: 'p', labels: { a: 'x'.repeat(64) } }),
    path: 'metadata.labels.a',
    reason: 'label value',
  },
  {
    name: 'annotation value not a string',
    object: pool({}, { name: 'p', annotations: { a: 1 } }),
    path: 'metadata.annotations.a',
    reason: 'expected string, got number',
  },
  {
    name: 'resourceVersion not a number',
    object: pool({}, { name: 'p', resourceVersion: 'abc' }),
    path: 'metadata.resourceVersion',
    reason: 'is not a resource version',
  },
  // --- IPPool -------------------------------------------------------------------------
  {
    name: 'IPPool without spec',
    object: obj('IPPool', { name: 'p' }),
    path: 'spec',
    reason: 'required field is missing',
  },
  {
    name: 'IPPool without cidr',
    object: obj('IPPool', { name: 'p' }, {}),
    path: 'spec.cidr',
    reason: 'required field is missing',
  },
  {
    name: 'IPPool blockSize above 32',
    object: pool({ blockSize: 33 }),
    path: 'spec.blockSize',
    reason: '33 is out of range 20-32',
  },
  {
    name: 'IPPool blockSize below 20',
    object: pool({ blockSize: 19 }),
    path: 'spec.blockSize',
    reason: '19 is out of range 20-32',
  },
  {
    name: 'IPPool blockSize fractional',
    object: pool({ blockSize: 26.5 }),
    path: 'spec.blockSize',
    reason: 'is not an integer',
  },
  {
    name: 'IPPool blockSize as text',
    object: pool({ blockSize: '26' }),
    path: 'spec.blockSize',
    reason: 'expected a number',
  },
  {
    name: 'IPPool cidr with host bits',
    object: pool({ cidr: '10.70.0.1/16' }),
    path: 'spec.cidr',
    reason: 'host bits set (did you mean 10.70.0.0/16?)',
  },
  {
    name: 'IPPool cidr IPv6',
    object: pool({ cidr: 'fd00::/64' }),
    path: 'spec.cidr',
    reason: 'IPv6',
  },
  {
    name: 'IPPool cidr without prefix',
    object: pool({ cidr: '10.70.0.0' }),
    path: 'spec.cidr',
    reason: 'is not a CIDR',
  },
  {
    name: 'IPPool cidr octet above 255',
    object: pool({ cidr: '10.300.0.0/16' }),
    path: 'spec.cidr',
    reason: 'not an IPv4 address',
  },
  {
    name: 'IPPool smaller than one block',
    object: pool({ cidr: '10.70.0.0/28', blockSize: 26 }),
    path: 'spec.blockSize',
    reason: 'smaller than one block',
  },
  {
    name: 'IPPool unknown ipipMode',
    object: pool({ ipipMode: 'Sometimes' }),
    path: 'spec.ipipMode',
    reason: '"Sometimes" is not one of Always, CrossSubnet, Never',
  },
  {
    name: 'IPPool ipip and vxlan both on',
    object: pool({ ipipMode: 'Always', vxlanMode: 'Always' }),
    path: 'spec.vxlanMode',
    reason: 'cannot both be enabled',
  },
  {
    name: 'IPPool natOutgoing as text',
    object: pool({ natOutgoing: 'yes' }),
    path: 'spec.natOutgoing',
    reason: 'expected boolean, got string',
  },
  {
    name: 'IPPool bad nodeSelector',
    object: pool({ nodeSelector: 'zone ==' }),
    path: 'spec.nodeSelector',
    reason: '',
  },
  {
    name: 'IPPool unknown spec field',
    object: pool({ ipipMod: 'Always' }),
    path: 'spec.ipipMod',
    reason: 'unknown field',
  },
  // --- WorkloadEndpoint ---------------------------------------------------------------
  {
    name: 'WorkloadEndpoint without node',
    object: obj('WorkloadEndpoint', { name: 'w' }, { interfaceName: 'tort1' }),
    path: 'spec.node',
    reason: 'required field is missing',
  },
  {
    name: 'WorkloadEndpoint interface name too long',
    object: wep({ interfaceName: 'averyverylongname0' }),
    path: 'spec.interfaceName',
    reason: 'is not a Linux interface name',
  },
  {
    name: 'WorkloadEndpoint ipNetwork not /32',
    object: wep({ ipNetworks: ['10.70.0.1/24'] }),
    path: 'spec.ipNetworks[0]',
    reason: 'is not an IPv4 /32',
  },
  {
    name: 'WorkloadEndpoint ipNetwork twice',
    object: wep({ ipNetworks: ['10.70.0.1/32', '10.70.0.1/32'] }),
    path: 'spec.ipNetworks[1]',
    reason: 'listed twice',
  },
  {
    name: 'WorkloadEndpoint bad MAC',
    object: wep({ mac: 'ee:ee:ee:ee:ee' }),
    path: 'spec.mac',
    reason: 'is not a MAC address',
  },
  {
    name: 'WorkloadEndpoint port out of range',
    object: wep({ ports: [{ name: 'http', protocol: 'TCP', port: 70000 }] }),
    path: 'spec.ports[0].port',
    reason: '70000 is out of range 1-65535',
  },
  {
    name: 'WorkloadEndpoint port protocol ICMP',
    object: wep({ ports: [{ name: 'ping', protocol: 'ICMP', port: 1 }] }),
    path: 'spec.ports[0].protocol',
    reason: 'is not one of TCP, UDP, SCTP',
  },
  {
    name: 'WorkloadEndpoint port name twice',
    object: wep({
      ports: [
        { name: 'http', port: 80 },
        { name: 'http', port: 8080 },
      ],
    }),
    path: 'spec.ports[1].name',
    reason: 'used twice',
  },
  {
    name: 'WorkloadEndpoint bad port name',
    object: wep({ ports: [{ name: 'HTTP_PORT', port: 80 }] }),
    path: 'spec.ports[0].name',
    reason: 'port name',
  },
  // --- HostEndpoint -------------------------------------------------------------------
  {
    name: 'HostEndpoint with neither interface nor IPs',
    object: hep({}),
    path: 'spec.interfaceName',
    reason: 'needs interfaceName or expectedIPs',
  },
  {
    name: 'HostEndpoint expected IP not an address',
    object: hep({ expectedIPs: ['10.0.0.300'] }),
    path: 'spec.expectedIPs[0]',
    reason: 'is not an IPv4 address',
  },
  {
    name: 'HostEndpoint profile name invalid',
    object: hep({ interfaceName: 'eth0', profiles: ['Bad Profile'] }),
    path: 'spec.profiles[0]',
    reason: 'is not a valid name',
  },
  // --- Node -------------------------------------------------------------------------
  {
    name: 'Node bgp address without prefix',
    object: obj('Node', { name: 'node-1' }, { bgp: { ipv4Address: '10.0.0.1' } }),
    path: 'spec.bgp.ipv4Address',
    reason: 'expected a.b.c.d/n',
  },
  {
    name: 'Node AS number zero',
    object: obj('Node', { name: 'node-1' }, { bgp: { ipv4Address: '10.0.0.1/24', asNumber: 0 } }),
    path: 'spec.bgp.asNumber',
    reason: '0 is out of range 1-4294967295',
  },
  {
    name: 'Node route reflector cluster ID not an address',
    object: obj(
      'Node',
      { name: 'node-1' },
      { bgp: { ipv4Address: '10.0.0.1/24', routeReflectorClusterID: 'rr1' } },
    ),
    path: 'spec.bgp.routeReflectorClusterID',
    reason: 'is not an IPv4 address',
  },
  // --- BGP ----------------------------------------------------------------------------
  {
    name: 'IPAMConfiguration with a name other than default',
    object: obj('IPAMConfiguration', { name: 'mine' }, {}),
    path: 'metadata.name',
    reason: 'the IPAMConfiguration must be called "default"',
  },
  {
    name: 'BGPConfiguration per node sets the AS',
    object: obj('BGPConfiguration', { name: 'node.node-1' }, { asNumber: 65000 }),
    path: 'spec.asNumber',
    reason: 'only the "default" BGPConfiguration',
  },
  {
    name: 'BGPConfiguration unknown log severity',
    object: obj('BGPConfiguration', { name: 'default' }, { logSeverityScreen: 'Verbose' }),
    path: 'spec.logSeverityScreen',
    reason: 'is not one of Debug, Info',
  },
  {
    name: 'BGPConfiguration service CIDR invalid',
    object: obj(
      'BGPConfiguration',
      { name: 'default' },
      { serviceClusterIPs: [{ cidr: '10.96.0.0/33' }] },
    ),
    path: 'spec.serviceClusterIPs[0].cidr',
    reason: 'prefix length',
  },
  {
    name: 'BGPPeer with neither peerIP nor peerSelector',
    object: peer({ asNumber: 65001 }),
    path: 'spec.peerIP',
    reason: 'needs peerIP',
  },
  {
    name: 'BGPPeer peerIP without asNumber',
    object: peer({ peerIP: '192.0.2.1' }),
    path: 'spec.asNumber',
    reason: 'required with peerIP',
  },
  {
    name: 'BGPPeer node and nodeSelector together',
    object: peer({ peerIP: '192.0.2.1', asNumber: 65001, node: 'n1', nodeSelector: 'all()' }),
    path: 'spec.nodeSelector',
    reason: 'cannot both be set',
  },
  {
    name: 'BGPPeer peerIP not an address',
    object: peer({ peerIP: 'router1', asNumber: 65001 }),
    path: 'spec.peerIP',
    reason: 'is not an IPv4 peer address',
  },
  {
    name: 'BGPPeer password too long',
    object: peer({ peerIP: '192.0.2.1', asNumber: 65001, password: 'p'.repeat(81) }),
    path: 'spec.password',
    reason: '1-80 characters',
  },
  // --- AgentConfiguration -------------------------------------------------------------
  {
    name: 'AgentConfiguration unknown log level',
    object: obj('AgentConfiguration', { name: 'default' }, { logLevel: 'loud' }),
    path: 'spec.logLevel',
    reason: 'is not one of trace, debug',
  },
  {
    name: 'AgentConfiguration health port out of range',
    object: obj('AgentConfiguration', { name: 'default' }, { healthPort: 0 }),
    path: 'spec.healthPort',
    reason: '0 is out of range 1-65535',
  },
  {
    name: 'AgentConfiguration health and metrics on one port',
    object: obj('AgentConfiguration', { name: 'node.n1' }, { healthPort: 9099, metricsPort: 9099 }),
    path: 'spec.metricsPort',
    reason: 'both 9099',
  },
  // --- policy kinds (validated by src/policy/resources.ts) -----------------------------
  {
    name: 'NetworkPolicy unknown action',
    object: policy({ ingress: [{ action: 'Alow' }] }),
    path: 'spec.ingress[0].action',
    reason: 'unknown action "Alow"',
  },
  {
    name: 'NetworkPolicy bad selector',
    object: policy({ selector: 'app = "web"' }),
    path: 'spec.selector',
    reason: '',
  },
  {
    name: 'NetworkPolicy unknown spec field',
    object: policy({ priority: 1 }),
    path: 'spec.priority',
    reason: 'unknown field',
  },
  {
    name: 'GlobalNetworkPolicy with a namespace',
    object: obj('GlobalNetworkPolicy', { name: 'g', namespace: 'prod' }, {}),
    path: 'metadata.namespace',
    reason: 'cluster-scoped',
  },
  {
    name: 'Tier order not a number',
    object: obj('Tier', { name: 'security' }, { order: 'first' }),
    path: 'spec.order',
    reason: 'order must be a finite number',
  },
  {
    name: 'Profile name reserved for namespaces',
    object: obj('Profile', { name: 'kns.prod' }, {}),
    path: 'metadata.name',
    reason: 'reserved',
  },
  {
    name: 'NetworkSet net not a CIDR',
    object: obj('NetworkSet', { name: 'ns1', namespace: 'prod' }, { nets: ['10.0.0.0/40'] }),
    path: 'spec.nets[0]',
    reason: 'prefix length',
  },
  {
    name: 'GlobalNetworkSet nets not a list',
    object: obj('GlobalNetworkSet', { name: 'gns' }, { nets: '10.0.0.0/8' }),
    path: 'spec.nets',
    reason: 'expected array',
  },
  {
    name: 'Kubernetes NetworkPolicy without podSelector',
    object: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'k', namespace: 'prod' },
      spec: {},
    },
    path: 'spec.podSelector',
    reason: 'required field is missing',
  },
  {
    name: 'Kubernetes NetworkPolicy endPort below port',
    object: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'k', namespace: 'prod' },
      spec: { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 79 }] }] },
    },
    path: 'spec.ingress[0].ports[0].endPort',
    reason: 'below port',
  },
  {
    name: 'Namespace with an invalid name',
    object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'Prod' } },
    path: 'metadata.name',
    reason: 'is not a DNS label',
  },
  {
    name: 'Namespace with an unknown top-level field',
    object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' }, data: {} },
    path: 'data',
    reason: 'unknown field',
  },
];

/** One well-formed object of every kind. */
export const VALID_EXAMPLES: readonly Record<string, unknown>[] = [
  obj('IPPool', { name: 'pool-ok' }, { cidr: '10.80.0.0/16' }),
  obj(
    'NetworkPolicy',
    { name: 'web', namespace: 'prod' },
    { selector: 'app == "web"', ingress: [{ action: 'Allow' }] },
  ),
  obj('GlobalNetworkPolicy', { name: 'deny-all' }, { order: 2000, types: ['Ingress'] }),
  obj('Tier', { name: 'security' }, { order: 100 }),
  obj(
    'Profile',
    { name: 'allow-all' },
    { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
  ),
  obj(
    'NetworkSet',
    { name: 'office', namespace: 'prod', labels: { role: 'office' } },
    { nets: ['192.0.2.0/24'] },
  ),
  obj('GlobalNetworkSet', { name: 'internet' }, { nets: ['0.0.0.0/0'] }),
  obj(
    'HostEndpoint',
    { name: 'node-1-eth0', labels: { role: 'host' } },
    { node: 'node-1', interfaceName: 'eth0', expectedIPs: ['10.0.0.1'] },
  ),
  obj(
    'WorkloadEndpoint',
    { name: 'node--1-cni-abc-eth0', namespace: 'prod', labels: { app: 'web' } },
    {
      node: 'node-1',
      orchestrator: 'cni',
      workload: 'abc',
      containerID: 'abc123',
      interfaceName: 'tort1234',
      mac: 'EE:EE:EE:EE:EE:EE',
      ipNetworks: ['10.80.0.5/32'],
      profiles: ['kns.prod'],
      ports: [{ name: 'http', protocol: 'tcp', port: 80 }],
    },
  ),
  obj(
    'Node',
    { name: 'node-1', labels: { zone: 'a' } },
    { bgp: { ipv4Address: '10.0.0.1/24', asNumber: 65001 } },
  ),
  obj('BGPConfiguration', { name: 'default' }, {}),
  obj(
    'BGPPeer',
    { name: 'rack-tor' },
    { peerIP: '192.0.2.1:1179', asNumber: 65010, nodeSelector: 'rack == "a"' },
  ),
  obj('AgentConfiguration', { name: 'node.node-1' }, { logLevel: 'Debug', metricsPort: 9092 }),
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'deny-ingress', namespace: 'prod' },
    spec: { podSelector: {}, policyTypes: ['Ingress'] },
  },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod', labels: { team: 'a' } } },
  obj('IPReservation', { name: 'keep-out' }, { reservedCIDRs: ['10.80.0.0/28', '10.80.1.1'] }),
  obj('IPAMConfiguration', { name: 'default' }, { strictAffinity: true, maxBlocksPerHost: 4 }),
  obj(
    'BGPFilter',
    { name: 'no-small' },
    { exportV4: [{ action: 'Reject', matchOperator: 'In', cidr: '10.80.0.0/16' }] },
  ),
  obj('FelixConfiguration', { name: 'default' }, { bpfEnabled: true, logSeverityScreen: 'Info' }),
  obj('KubeControllersConfiguration', { name: 'default' }, { logSeverityScreen: 'Info' }),
  obj('ClusterInformation', { name: 'default' }, { datastoreReady: true }),
  obj(
    'StagedNetworkPolicy',
    { name: 'web-next', namespace: 'prod' },
    { stagedAction: 'Set', selector: 'app == "web"', ingress: [{ action: 'Allow' }] },
  ),
  obj('StagedGlobalNetworkPolicy', { name: 'deny-next' }, { stagedAction: 'Set', order: 2000 }),
  obj(
    'StagedKubernetesNetworkPolicy',
    { name: 'deny-next', namespace: 'prod' },
    { stagedAction: 'Set', podSelector: {}, policyTypes: ['Ingress'] },
  ),
];
