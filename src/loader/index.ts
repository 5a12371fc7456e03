/** Loading the tc dataplane, pinning its maps, attaching it to pod interfaces. */
export {
  attachPrograms,
  attachUplinkPrograms,
  detachPrograms,
  detachUplinkPrograms,
  inNetns,
  TC_HANDLE,
  TC_PRIORITY,
  type EndpointPrograms,
  type NetnsOption,
  type UplinkPrograms,
} from './attach.js';
export {
  configGlobals,
  DEFAULT_CT_TIMEOUTS_MS,
  ENDPOINT_TO_HOST_ACTIONS,
  type CtTimeoutsMs,
  type DataplaneConfig,
  type EndpointToHostAction,
} from './config.js';
export {
  loadDataplane,
  PROGRAM_NAMES,
  type Dataplane,
  type DataplaneMaps,
  type DataplaneViews,
  type LoadOptions,
} from './dataplane.js';
export { defaultObjectPath } from './object-path.js';
export { ensurePinRoot, removePins } from './pins.js';
export {
  attachOrder,
  defaultXdpObjectPath,
  loadXdp,
  XDP_PROGRAM_NAME,
  type XdpAttachMode,
  type XdpConfig,
  type XdpDataplane,
  type XdpLoadOptions,
} from './xdp.js';
