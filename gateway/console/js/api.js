// Requests to the gateway. The console authenticates with its device session cookie (HttpOnly,
// SameSite=Strict; gateway/api/sessions.py): the page never holds a secret. Every write carries
// X-Edge-Console, which the gateway requires of cookie writes (a cross-site page cannot add it).
export class ApiError extends Error {
  constructor(status, code, field) {
    super(code);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const listeners = { unauthorized: [] };
export function onUnauthorized(fn) {
  listeners.unauthorized.push(fn);
}

export async function api(path, opts = {}) {
  const headers = Object.assign({ "X-Edge-Console": "1" }, opts.headers || {});
  if (opts.json !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, {
      method: opts.method || (opts.json !== undefined ? "POST" : "GET"),
      headers,
      body: opts.json !== undefined ? JSON.stringify(opts.json) : undefined,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network");
  }
  if (r.ok) return opts.raw ? r : r.status === 204 ? null : r.json();
  let code = "server_error";
  let field;
  try {
    const body = await r.json();
    code = body.code || code;
    field = body.detail && body.detail.field;
  } catch (e) {
    /* not JSON: keep the generic code */
  }
  if (r.status === 401 && !opts.signin) for (const fn of listeners.unauthorized) fn(code);
  throw new ApiError(r.status, code, field);
}
