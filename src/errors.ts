/**
 * An error the user can fix: a bad option, an unusable kernel file. The CLI prints its
 * message as one line and exits with status 2; it never shows a stack trace.
 */
export class UserError extends Error {
  override readonly name = "UserError";
}
