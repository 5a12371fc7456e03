/**
 * `tortie lab conformance`: NetworkPolicy conformance cases (the format of
 * ../shared/netpol-case-format.md) run against a lab.
 */
export { CaseFileError, formatJsonPath } from './errors.js';
export { expandExpectation, matrixStrings, type RawExpectation } from './expect.js';
export { EvaluatorLab } from './evaluator-lab.js';
export { caseFilePaths, loadCaseFiles } from './files.js';
export type { ConformanceLab, ConformancePodSpec } from './lab.js';
export { OneNodeConformanceLab, destroyOneNodeLab, type OneNodeLabOptions } from './one-node.js';
export { hasPlaceholders, placeholderProblem, substitutePlaceholders } from './placeholders.js';
export {
  acrossNodes,
  drawWrongCells,
  formatCase,
  formatHuman,
  formatSummary,
  toJsonReport,
  type JsonReport,
} from './report.js';
export {
  ConformanceSession,
  modelFingerprint,
  runCaseFiles,
  servedPorts,
  summarize,
  type CaseResult,
  type RunOptions,
  type RunResult,
  type StepResult,
  type WrongCell,
} from './run.js';
export {
  KNOWN_REQUIREMENTS,
  parseCaseFile,
  parseCaseFileText,
  type Action,
  type Case,
  type CaseFile,
  type Model,
  type ModelPod,
  type Probe,
  type Protocol,
  type Step,
} from './schema.js';
