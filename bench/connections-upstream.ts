// Benchmark upstream for `npm run bench:connections`: the test suite's MCP server (the SDK
// over Streamable HTTP) behind its OAuth authorization server, in a process of its own.
// Prints both URLs on stdout.
import { AuthServer } from '../test/connections/fixtures/auth-server.ts';
import { ResourceServer } from '../test/connections/fixtures/mcp-server.ts';

const as = new AuthServer({ accessTokenTtl: 3600 });
await as.listen();
const resource = new ResourceServer(as);
await resource.listen();
console.log(`mcp ${resource.url} as ${as.origin}`);
process.on('SIGTERM', () => void Promise.all([resource.close(), as.close()]).then(() => process.exit(0)));
