// Who the reader is. Open mode (--auth none): the Reader field, remembered in this browser.
// --auth oidc: authorization code flow with PKCE (RFC 7636) for the public client
// --oidc-client-id; tokens are kept in memory only and renewed with the refresh token.

const READER_KEY = "ups-ui.reader";
const FLOW_KEY = "ups-ui.oidc-flow";  // state + code verifier, for the redirect back only

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomText = () => b64url(crypto.getRandomValues(new Uint8Array(32)));

function claimsOf(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch { return {}; }
}

export class OpenAuth {
  constructor(field) {
    this.field = field;
    field.value = localStorage.getItem(READER_KEY) || "";
    field.addEventListener("change", () => localStorage.setItem(READER_KEY, field.value.trim()));
  }
  async start() { return true; }
  reader() { return this.field.value.trim(); }
  roles() { return ["reader", "arbitrator", "admin"]; }  // one workstation, no roles
  async token() { return null; }
}

export class OidcAuth {
  constructor(oidc) {
    this.issuer = oidc.issuer.replace(/\/$/, "");
    this.clientId = oidc.client_id;
    this.rolesClaim = oidc.roles_claim || "realm_access.roles";
    this.redirectUri = `${location.origin}${location.pathname}`;
    this.tokens = null;  // memory only
    this.expiresAt = 0;
    this.renewal = null;
  }

  async discover() {
    if (!this.meta) {
      const r = await fetch(`${this.issuer}/.well-known/openid-configuration`);
      if (!r.ok) throw new Error(`the OIDC issuer answered ${r.status}`);
      this.meta = await r.json();
    }
    return this.meta;
  }

  /** Finish a redirect back from the issuer if this load is one; true when signed in. */
  async start() {
    const params = new URLSearchParams(location.search);
    const flow = JSON.parse(sessionStorage.getItem(FLOW_KEY) || "null");
    if (params.has("code") && flow && params.get("state") === flow.state) {
      sessionStorage.removeItem(FLOW_KEY);
      history.replaceState(null, "", this.redirectUri);
      await this.grant({ grant_type: "authorization_code", code: params.get("code"),
        redirect_uri: this.redirectUri, code_verifier: flow.verifier });
    } else if (params.has("error")) {
      history.replaceState(null, "", this.redirectUri);
      throw new Error(`sign-in failed: ${params.get("error_description") || params.get("error")}`);
    }
    return this.tokens !== null;
  }

  async signIn() {
    const meta = await this.discover();
    const verifier = randomText();
    const state = randomText();
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem(FLOW_KEY, JSON.stringify({ state, verifier }));
    const query = new URLSearchParams({ response_type: "code", client_id: this.clientId,
      redirect_uri: this.redirectUri, scope: "openid profile offline_access", state,
      code_challenge: challenge, code_challenge_method: "S256" });
    location.assign(`${meta.authorization_endpoint}?${query}`);
  }

  async grant(form) {
    const meta = await this.discover();
    const r = await fetch(meta.token_endpoint, { method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: this.clientId, ...form }) });
    if (!r.ok) throw new Error(`the OIDC issuer refused the token request (${r.status})`);
    const tokens = await r.json();
    this.tokens = { ...this.tokens, ...tokens };
    this.expiresAt = Date.now() + (tokens.expires_in || 300) * 1000;
    clearTimeout(this.renewal);
    if (this.tokens.refresh_token) {  // renew a minute (or a fifth of the lifetime) before expiry
      const lead = Math.min(60_000, (tokens.expires_in || 300) * 200);
      this.renewal = setTimeout(() => this.renew().catch(() => {}), Math.max(1000, this.expiresAt - Date.now() - lead));
    }
  }

  async renew() {
    await this.grant({ grant_type: "refresh_token", refresh_token: this.tokens.refresh_token });
  }

  async token() {
    if (!this.tokens) return null;
    if (Date.now() >= this.expiresAt - 5000 && this.tokens.refresh_token) await this.renew();
    return this.tokens.access_token;
  }

  claims() { return this.tokens ? { ...claimsOf(this.tokens.id_token || ""), ...claimsOf(this.tokens.access_token) } : {}; }
  /** The reader is the token's subject (the server records claims by subject). */
  reader() { return this.claims().sub || ""; }
  displayName() { const c = this.claims(); return c.preferred_username || c.name || c.sub || ""; }
  roles() {
    const c = this.claims();
    let value = c[this.rolesClaim];
    if (value === undefined) value = this.rolesClaim.split(".").reduce((v, k) => (v && typeof v === "object" ? v[k] : undefined), c);
    const roles = Array.isArray(value) ? value : String(value || "").split(/[\s,]+/).filter(Boolean);
    return roles.includes("admin") ? ["reader", "arbitrator", "admin", ...roles] : roles;
  }

  async signOut() {
    const idToken = this.tokens?.id_token;
    this.tokens = null;
    clearTimeout(this.renewal);
    const meta = await this.discover().catch(() => ({}));
    if (meta.end_session_endpoint) {
      const query = new URLSearchParams({ client_id: this.clientId, post_logout_redirect_uri: this.redirectUri });
      if (idToken) query.set("id_token_hint", idToken);
      location.assign(`${meta.end_session_endpoint}?${query}`);
    } else {
      location.assign(this.redirectUri);
    }
  }
}

/** The auth of this page, wired to the header's controls; resolves once the reader is known (or not). */
export async function setUpAuth(config, elements) {
  if (config.auth !== "oidc") {
    const auth = new OpenAuth(elements.reader);
    await auth.start();
    return auth;
  }
  const auth = new OidcAuth(config.oidc);
  elements.reader.hidden = true;
  elements.reader.labels.forEach((l) => { l.hidden = true; });
  elements.signIn.addEventListener("click", () => auth.signIn());
  elements.signOut.addEventListener("click", () => auth.signOut());
  const signedIn = await auth.start();
  elements.signIn.hidden = signedIn;
  elements.signOut.hidden = !signedIn;
  elements.signedIn.hidden = !signedIn;
  elements.signedIn.textContent = signedIn ? `Signed in as ${auth.displayName()}` : "";
  return auth;
}
