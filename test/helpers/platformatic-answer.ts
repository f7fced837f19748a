/**
 * @platformatic/kafka's low-level API calls throw on any error code in the response; a test
 * that checks exact error codes wants the response either way.
 */
export async function platformaticAnswer<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const response = (err as { response?: T }).response;
    if (response === undefined) throw err;
    return response;
  }
}
