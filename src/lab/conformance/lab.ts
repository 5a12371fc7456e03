/**
 * What the conformance runner needs from a lab, and nothing more: namespaces and pods
 * with labels, the complete policy set in force, a way to wait until the dataplane
 * enforces what was set, and probes from pod to pod. The one-node lab implements it in
 * ./one-node.ts; a multi-node lab (agent, etcd, IPIP) implements the same interface, with
 * `waitForDataplane` waiting for every agent to report the change programmed.
 */
import type { Labels } from '../../policy/model.js';
import type { Protocol } from './schema.js';

export interface ConformancePodSpec {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  /** What named ports in policies resolve to on this pod (its container ports with names). */
  readonly namedPorts: readonly { name: string; port: number; protocol: Protocol }[];
  /** Every (port, protocol) the pod must serve; only protocols the lab supports. */
  readonly serve: readonly { port: number; protocol: Protocol }[];
}

export interface ConformanceLab {
  /** One line for humans: what kind of lab this is ("one node, BPF dataplane"). */
  readonly description: string;
  /** A CIDR holding every pod address the lab hands out (`$POD_CIDR`). */
  readonly podCidr: string;
  /** Why the lab cannot serve and probe `protocol`, or undefined when it can. */
  unsupported(protocol: Protocol): string | undefined;

  createNamespace(name: string, labels: Labels): Promise<void>;
  /** Creates a pod (spread over the lab's nodes) serving `spec.serve`; resolves with its address. */
  createPod(spec: ConformancePodSpec): Promise<{ ip: string }>;
  /** The pod's complete label map from now on. */
  setPodLabels(pod: string, labels: Labels): Promise<void>;
  /** The namespace's complete label map from now on. */
  setNamespaceLabels(namespace: string, labels: Labels): Promise<void>;
  /**
   * The complete set of policies in force from now on (objects as a user would apply
   * them, placeholders already substituted): the lab creates, updates and deletes.
   */
  setPolicies(policies: readonly unknown[]): Promise<void>;
  /** Resolves once the dataplane enforces every change made so far. */
  waitForDataplane(): Promise<void>;
  /**
   * One connection attempt from pod `from` to pod `to`'s address (keys "ns/name"): true
   * when a request/response exchange succeeded within `timeoutMs`.
   */
  probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    timeoutMs: number,
  ): Promise<boolean>;
  /**
   * The node a pod runs on (labs with several nodes): the runner counts the probes that
   * cross nodes. Labs without it are taken as one node.
   */
  nodeOf?(pod: string): string | undefined;
  /** Removes everything the lab created. */
  close(): Promise<void>;
}
