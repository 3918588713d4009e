export { ProxyTarget, parseTargetUrl, type ProxyTargetUrl } from './target.ts';
export { Forwarder, describeUpstreamError } from './forwarder.ts';
export { registerProxyRoutes, registerProxyAdminRoutes, handleProxyUpgrade, subPathOf, type ProxyDeps } from './routes.ts';
export { stripCookie, upstreamRequestHeaders, downstreamResponseHeaders, type ForwardContext } from './headers.ts';
