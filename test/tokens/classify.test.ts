/**
 * Classification of the forms MSAL reports that the stand-in cannot produce through our
 * network module (pure logic): MSAL's own device code errors, discovery failures with and
 * without the answer our network module kept, and errorNo as a number or a string.
 */
import { AuthError, ClientAuthError, InteractionRequiredAuthError, ServerError } from "@azure/msal-node";
import { describe, expect, it } from "vitest";
import { classifyIdentityError, queueStateOf } from "../../src/tokens/identity-errors.js";
import { IdentityTransportError } from "../../src/tokens/identity-http-client.js";

describe("classifyIdentityError", () => {
  it("MSAL's post_request_failed for a refused device code poll is read by the error it names", () => {
    const declined = classifyIdentityError(new AuthError("post_request_failed", "", "authorization_declined"), "desk");
    expect(declined).toMatchObject({ code: "IDENTITY_NEEDS_SIGN_IN", message: expect.stringContaining("declined") });
    expect(declined.fix).toContain("mailfetchd login desk");
    expect(classifyIdentityError(new AuthError("post_request_failed", "", "expired_token"), "desk").message).toMatch(/expired/);
  });

  it("MSAL's own device code expiry and cancellation", () => {
    expect(classifyIdentityError(new ClientAuthError("device_code_expired", ""), "desk").code).toBe("IDENTITY_NEEDS_SIGN_IN");
    expect(classifyIdentityError(new ClientAuthError("device_code_polling_cancelled", ""), "desk").code).toBe("IDENTITY_NEEDS_SIGN_IN");
  });

  it("a failed discovery is an unknown tenant only when the discovery answer said so", () => {
    const resolution = new ClientAuthError("endpoints_resolution_error", "");
    const tenant = new ServerError("invalid_tenant", "", "AADSTS90002: Tenant 'x' not found.", undefined, "90002", 400);
    expect(classifyIdentityError(resolution, "q", { discoveryFailure: tenant }).code).toBe("IDENTITY_TENANT_NOT_FOUND");
    const network = new IdentityTransportError("identity_unavailable", "cannot reach the identity endpoint h: ECONNREFUSED");
    expect(classifyIdentityError(resolution, "q", { discoveryFailure: network }).code).toBe("IDENTITY_UNAVAILABLE");
    expect(classifyIdentityError(resolution, "q").code).toBe("IDENTITY_UNAVAILABLE");
  });

  it("reads the AADSTS code from errorNo (a number at run time, a string in msal's types) or the description", () => {
    const asNumber = new InteractionRequiredAuthError("invalid_grant", "AADSTS700082: expired", "bad_token");
    Object.assign(asNumber, { errorNo: 700082 });
    expect(classifyIdentityError(asNumber, "q").code).toBe("IDENTITY_SIGN_IN_EXPIRED");
    expect(classifyIdentityError(new ServerError("invalid_grant", "", "AADSTS50126: bad", undefined, "50126"), "q").code).toBe("IDENTITY_BAD_PASSWORD");
    expect(classifyIdentityError(new ServerError("invalid_grant", "", "AADSTS50057: The user account is disabled."), "q").code).toBe(
      "IDENTITY_ACCOUNT_DISABLED",
    );
  });

  it("an unknown invalid_grant needs a sign-in; an unknown other error is retried", () => {
    const grant = classifyIdentityError(new ServerError("invalid_grant", "", "AADSTS1234567: new"), "q");
    expect([grant.code, queueStateOf(grant.code)]).toEqual(["IDENTITY_SIGN_IN_EXPIRED", "needs-sign-in"]);
    const other = classifyIdentityError(new ServerError("invalid_request", "", "AADSTS7654321: new"), "q");
    expect([other.code, other.retryable, other.message]).toEqual([
      "IDENTITY_ERROR",
      true,
      "Queue q: the identity platform refused the request (invalid_request, AADSTS7654321).",
    ]);
  });
});
