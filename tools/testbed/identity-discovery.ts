/**
 * The discovery documents the identity stand-in serves, shaped like Microsoft's. msal-node
 * reads token_endpoint, authorization_endpoint, issuer (same scheme, host and port as the
 * authority) and jwks_uri, and derives the device code URL from token_endpoint.
 */

/** GET /{tenant}/v2.0/.well-known/openid-configuration for a known tenant. */
export function openIdConfiguration(origin: string, tenant: string, tenantId: string): Record<string, unknown> {
  const base = `${origin}/${tenant}`;
  // For /organizations and /common Microsoft leaves the tenant as a placeholder in the issuer.
  const issuerTenant = tenant.toLowerCase() === tenantId.toLowerCase() ? tenantId : "{tenantid}";
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer: `${origin}/${issuerTenant}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${origin}/oidc/userinfo`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: [
      "sub",
      "iss",
      "aud",
      "exp",
      "iat",
      "auth_time",
      "acr",
      "nonce",
      "preferred_username",
      "name",
      "tid",
      "ver",
      "at_hash",
      "c_hash",
      "email",
    ],
    tenant_region_scope: "EU",
    cloud_instance_name: "microsoftonline.com",
    cloud_graph_host_name: "graph.windows.net",
    msgraph_host: "graph.microsoft.com",
    rbac_url: "https://pas.windows.net",
  };
}

/**
 * GET /common/discovery/instance: what MSAL asks when the authority's host is not in
 * knownAuthorities. We vouch for our own host only.
 */
export function instanceDiscovery(origin: string, tenantId: string, apiVersion: string | null): Record<string, unknown> {
  const host = new URL(origin).host;
  return {
    tenant_discovery_endpoint: `${origin}/${tenantId}/v2.0/.well-known/openid-configuration`,
    "api-version": apiVersion ?? "1.1",
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  };
}
