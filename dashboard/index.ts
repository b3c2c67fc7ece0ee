// The dashboard's public API: the fastify plugin, a server of its own, and their options.
export { authorised } from './auth.js';
export { createDashboard } from './create-dashboard.js';
export type { FleetPage } from './fleet-view.js';
export type { DashboardOptions, ResolvedDashboardOptions } from './options.js';
export { ProcessPage, processRegistry } from './process-metrics.js';
export { type RunningDashboard, type StartDashboardOptions, startDashboard } from './start-dashboard.js';
