/** The error a delivery fails with, for assertions on its code and message; fails the test when it succeeds. */
export async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the delivery to fail");
}
