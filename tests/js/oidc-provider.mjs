// A real OpenID Provider (the certified `oidc-provider` package) for the hub's end-to-end
// tests, on 127.0.0.1 with an ephemeral port. Prints one JSON line {"issuer": ...} when ready.
//
// Test control endpoints (plain JSON, loopback only):
//   POST /__test/setup  {"clients": [{client_id, client_secret, redirect_uris}]}
//        (re)creates the provider with these clients (the hub's redirect URI is only known
//        once the hub has bound its own ephemeral port).
//   POST /__test/mode   {"id_token": null | "wrong-nonce" | "other-audience" | "expired" |
//        "other-issuer" | "alg-none" | "bad-signature" | "hs256"}
//        makes the token endpoint hand out a misbehaving ID token, to prove the hub refuses it.
import http from "node:http";
import Provider from "oidc-provider";
import * as jose from "jose";

const accounts = {
  alice: {
    name: "Alice Liddell",
    email: "alice@example.org",
    email_verified: true,
    preferred_username: "alice",
    extension: "1001",
    phone_number: "+49 30 1234567",
    phone_numbers: ["+49 170 5550001:mobile", "+49 30 7654321"],
    groups: ["staff", "hub-admins"],
  },
  bob: {
    name: "Bob Builder",
    email: "bob@example.org",
    email_verified: true,
    preferred_username: "bob",
    phone_numbers: ["+49 30 2222222"],
    groups: ["staff"],
  },
};

const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: "test-key", alg: "RS256", use: "sig" };
const signingKey = await jose.importJWK(jwk, "RS256");

let provider = null;
let clients = [];
let mode = { id_token: null };

function makeProvider(issuer) {
  const p = new Provider(issuer, {
    clients,
    jwks: { keys: [jwk] },
    cookies: { keys: ["hub-test-cookie-key"] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: {
      openid: ["sub"],
      profile: ["name", "preferred_username", "extension", "groups"],
      email: ["email", "email_verified"],
      phone: ["phone_number", "phone_numbers"],
    },
    async findAccount(ctx, id) {
      if (!accounts[id]) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
    },
  });
  p.proxy = false;
  p.on("server_error", (ctx, err) => console.error("provider server_error", err));
  p.use(async (ctx, next) => {
    await next();
    if (ctx.path === "/token" && ctx.method === "POST" && ctx.status === 200 && mode.id_token && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token, mode.id_token) };
      console.error(`handed out a ${mode.id_token} ID token`);
    }
  });
  return p;
}

async function tamper(idToken, how) {
  const payload = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const resign = (claims) =>
    new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "test-key", typ: "JWT" }).sign(signingKey);
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  switch (how) {
    case "wrong-nonce": return resign({ ...payload, nonce: "not-the-nonce-the-hub-sent" });
    case "other-audience": return resign({ ...payload, aud: "some-other-client" });
    case "expired": return resign({ ...payload, iat: now - 7200, exp: now - 3600 });
    case "other-issuer": return resign({ ...payload, iss: "https://impostor.invalid" });
    case "alg-none": return `${b64({ alg: "none", typ: "JWT" })}.${b64(payload)}.`;
    case "bad-signature": {
      const [h, , s] = idToken.split(".");
      return `${h}.${b64({ ...payload, sub: "mallory" })}.${s}`;
    }
    case "hs256": {
      const secret = new TextEncoder().encode(clients[0]?.client_secret ?? "x");
      return new jose.SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(secret);
    }
    default: throw new Error(`unknown tamper mode ${how}`);
  }
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { try { resolve(body ? JSON.parse(body) : {}); } catch (e) { reject(e); } });
  });
}

let issuer = "";
const server = http.createServer(async (req, res) => {
  try {
    if (req.url === "/__test/setup" && req.method === "POST") {
      clients = (await readJson(req)).clients ?? [];
      provider = makeProvider(issuer);
      res.writeHead(204).end();
      return;
    }
    if (req.url === "/__test/mode" && req.method === "POST") {
      mode = await readJson(req);
      res.writeHead(204).end();
      return;
    }
    if (!provider) {
      res.writeHead(503, { "content-type": "text/plain" }).end("provider not set up: POST /__test/setup first\n");
      return;
    }
    provider.callback()(req, res);
  } catch (e) {
    console.error(e);
    res.writeHead(500).end(String(e));
  }
});

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  issuer = process.env.ISSUER ?? `http://127.0.0.1:${server.address().port}`;
  console.log(JSON.stringify({ issuer, port: server.address().port }));
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
