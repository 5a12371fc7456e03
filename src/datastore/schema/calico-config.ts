/**
 * Calico's configuration kinds that tortie accepts and stores whole, so a real cluster's
 * configuration is never refused: FelixConfiguration ("default", "node.<name>"),
 * KubeControllersConfiguration and ClusterInformation. What each field does in tortie
 * is in docs/calico-compat.md. A FelixConfiguration field name outside Calico's list is
 * refused with the nearest name, so a typo is not stored silently; values are stored as
 * given (IPv6 settings such as `ipv6Support` included: tortie runs IPv4 only and ignores
 * them, which is what they ask of an IPv4 cluster).
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import { didYouMean } from '../../util/nearest.js';

/**
 * The field names of Calico's FelixConfigurationSpec (api/pkg/apis/projectcalico/v3/
 * felixconfig.go in projectcalico/calico at 87c15906f20c), as data, plus the three that
 * v3.28 (projectcalico/api v3.28.4) still has and later releases dropped
 * (`bpfKubeProxyEndpointSlicesEnabled`, `iptablesLockFilePath`, `iptablesLockTimeout`):
 * a v3.28 cluster's export must go in. What the agent does with each:
 * src/agent/felix-config.ts.
 */
export const FELIX_FIELDS: readonly string[] = [
  'allowIPIPPacketsFromWorkloads',
  'allowVXLANPacketsFromWorkloads',
  'awsSrcDstCheck',
  'bpfAttachType',
  'bpfCTLBLogFilter',
  'bpfConnectTimeLoadBalancing',
  'bpfConnectTimeLoadBalancingEnabled',
  'bpfConntrackLogLevel',
  'bpfConntrackMode',
  'bpfConntrackTimeouts',
  'bpfDSROptoutCIDRs',
  'bpfDataIfacePattern',
  'bpfDisableGROForIfaces',
  'bpfDisableUnprivileged',
  'bpfEnabled',
  'bpfEnforceRPF',
  'bpfExcludeCIDRsFromNAT',
  'bpfExportBufferSizeMB',
  'bpfExtToServiceConnmark',
  'bpfExternalServiceMode',
  'bpfForceTrackPacketsFromIfaces',
  'bpfHostConntrackBypass',
  'bpfHostNetworkedNATWithoutCTLB',
  'bpfIPFragTimeout',
  'bpfIPFragmentReassemblyEnabled',
  'bpfJITHardening',
  'bpfKubeProxyEndpointSlicesEnabled',
  'bpfKubeProxyHealthzPort',
  'bpfKubeProxyIptablesCleanupEnabled',
  'bpfKubeProxyMinSyncPeriod',
  'bpfL3IfacePattern',
  'bpfLogFilters',
  'bpfLogLevel',
  'bpfMaglevMaxEndpointsPerService',
  'bpfMaglevMaxServices',
  'bpfMapSizeConntrack',
  'bpfMapSizeConntrackCleanupQueue',
  'bpfMapSizeConntrackScaling',
  'bpfMapSizeIPSets',
  'bpfMapSizeIfState',
  'bpfMapSizeNATAffinity',
  'bpfMapSizeNATBackend',
  'bpfMapSizeNATFrontend',
  'bpfMapSizePerCpuConntrack',
  'bpfMapSizeRoute',
  'bpfOverlayHostSourceIP',
  'bpfPSNATPorts',
  'bpfPolicyDebugEnabled',
  'bpfProfiling',
  'bpfRedirectToPeer',
  'cgroupV2Path',
  'chainInsertMode',
  'dataplaneDriver',
  'dataplaneWatchdogTimeout',
  'debugDisableLogDropping',
  'debugHost',
  'debugMemoryProfilePath',
  'debugPort',
  'debugSimulateCalcGraphHangAfter',
  'debugSimulateDataplaneApplyDelay',
  'debugSimulateDataplaneHangAfter',
  'defaultEndpointToHostAction',
  'deviceRouteProtocol',
  'deviceRouteSourceAddress',
  'deviceRouteSourceAddressIPv6',
  'disableConntrackInvalidCheck',
  'endpointReportingDelay',
  'endpointReportingEnabled',
  'endpointStatusPathPrefix',
  'externalNodesList',
  'failsafeInboundHostPorts',
  'failsafeOutboundHostPorts',
  'featureDetectOverride',
  'featureGates',
  'floatingIPs',
  'flowLogsCollectorDebugTrace',
  'flowLogsFlushInterval',
  'flowLogsGoldmaneServer',
  'flowLogsLocalReporter',
  'flowLogsPolicyEvaluationMode',
  'genericXDPEnabled',
  'goGCThreshold',
  'goMaxProcs',
  'goMemoryLimitMB',
  'healthEnabled',
  'healthHost',
  'healthPort',
  'healthTimeoutOverrides',
  'interfaceExclude',
  'interfacePrefix',
  'interfaceRefreshInterval',
  'ipForwarding',
  'ipipEnabled',
  'ipipMTU',
  'ipsetsRefreshInterval',
  'iptablesBackend',
  'iptablesFilterAllowAction',
  'iptablesFilterDenyAction',
  'iptablesLockFilePath',
  'iptablesLockProbeInterval',
  'iptablesLockTimeout',
  'iptablesMangleAllowAction',
  'iptablesMarkMask',
  'iptablesNATOutgoingInterfaceFilter',
  'iptablesPostWriteCheckInterval',
  'iptablesRefreshInterval',
  'ipv4ElevatedRoutePriority',
  'ipv4NormalRoutePriority',
  'ipv6ElevatedRoutePriority',
  'ipv6NormalRoutePriority',
  'ipv6Support',
  'istioAmbientMode',
  'istioDSCPMark',
  'kubeNodePortRanges',
  'liveMigrationRouteConvergenceTime',
  'localSubnetL2Reachability',
  'localSubnetL2ReachabilityRefreshInterval',
  'logActionRateLimit',
  'logActionRateLimitBurst',
  'logDebugFilenameRegex',
  'logFilePath',
  'logPrefix',
  'logSeverityFile',
  'logSeverityScreen',
  'logSeveritySys',
  'maxIpsetSize',
  'metadataAddr',
  'metadataPort',
  'mtuIfacePattern',
  'natOutgoingAddress',
  'natOutgoingExclusions',
  'natPortRange',
  'netlinkTimeout',
  'nftablesFilterAllowAction',
  'nftablesFilterDenyAction',
  'nftablesFlowTableDataIfacePattern',
  'nftablesFlowTableOffload',
  'nftablesMangleAllowAction',
  'nftablesMarkMask',
  'nftablesMode',
  'nftablesRefreshInterval',
  'nodeSelector',
  'openstackRegion',
  'policySyncPathPrefix',
  'programClusterRoutes',
  'prometheusGoMetricsEnabled',
  'prometheusMetricsCAFile',
  'prometheusMetricsCertFile',
  'prometheusMetricsClientAuth',
  'prometheusMetricsEnabled',
  'prometheusMetricsHost',
  'prometheusMetricsKeyFile',
  'prometheusMetricsPort',
  'prometheusProcessMetricsEnabled',
  'prometheusWireGuardMetricsEnabled',
  'removeExternalRoutes',
  'reportingInterval',
  'reportingTTL',
  'requireMTUFile',
  'routeRefreshInterval',
  'routeSource',
  'routeSyncDisabled',
  'routeTableRange',
  'routeTableRanges',
  'serviceLoopPrevention',
  'sidecarAccelerationEnabled',
  'usageReportingEnabled',
  'usageReportingInitialDelay',
  'usageReportingInterval',
  'useInternalDataplaneDriver',
  'vxlanEnabled',
  'vxlanMTU',
  'vxlanMTUV6',
  'vxlanPort',
  'vxlanVNI',
  'windowsManageFirewallRules',
  'wireguardEnabled',
  'wireguardEnabledV6',
  'wireguardHostEncryptionEnabled',
  'wireguardInterfaceName',
  'wireguardInterfaceNameV6',
  'wireguardKeepAlive',
  'wireguardListeningPort',
  'wireguardListeningPortV6',
  'wireguardMTU',
  'wireguardMTUV6',
  'wireguardRoutingRulePriority',
  'wireguardThreadingEnabled',
  'workloadSourceSpoofing',
  'xdpEnabled',
  'xdpRefreshInterval',
];

const felixFields = new Set(FELIX_FIELDS);

const byLowerCase = new Map(FELIX_FIELDS.map((f) => [f.toLowerCase(), f]));

/**
 * Field names are matched in any case, as calicoctl's decoder does (`LogSeverityScreen`),
 * and stored in Calico's spelling; a name that is no field in any case is refused.
 */
export const felixConfigurationSpec = z
  .record(z.string(), z.unknown())
  .superRefine((spec, ctx) => {
    for (const key of Object.keys(spec)) {
      if (!felixFields.has(key) && !byLowerCase.has(key.toLowerCase()))
        fail(ctx, `unknown field${didYouMean(key, FELIX_FIELDS)}`, [key]);
    }
  })
  .transform((spec) =>
    Object.fromEntries(
      Object.entries(spec).map(([k, v]) => [
        felixFields.has(k) ? k : (byLowerCase.get(k.toLowerCase()) ?? k),
        v,
      ]),
    ),
  );

export type FelixConfigurationSpec = Record<string, unknown>;

/** kube-controllers' settings: tortie runs no kube-controllers; stored as given. */
export const kubeControllersConfigurationSpec = z.record(z.string(), z.unknown());

/** Calico's cluster-wide facts (GUID, datastore ready, version): stored as given. */
export const clusterInformationSpec = z.record(z.string(), z.unknown());
