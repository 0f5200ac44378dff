/** The audit: report model, computation, budgets and renderers (terminal, JSON schema check, HTML). */
export { auditModel, rowAxisFor, TOOL_VERSION, type AuditOptions, type AuditProgressEvent } from './audit.js';
export { checkBudgets, defaultBudgetTarget, type BudgetOptions } from './budget.js';
export { renderAuditText } from './render-text.js';
export { renderAuditHtml } from './render-html.js';
export { validateJsonSchema, type SchemaError } from './json-schema.js';
export { zeroPatternOf, zeroPatternPng } from './zero-pattern.js';
export { gzipSizeOf, GzipCounter, type GzipLevel } from './gzip.js';
export * from './report.js';
