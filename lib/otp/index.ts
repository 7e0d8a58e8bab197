// One-time codes and link tokens, and the log redaction that keeps them out of logs.
export { otpLoggerOptions, otpRedactPaths, redactUrl } from './logging.js'
export type { OtpInvalidInput } from './input.js'
export { resolveOtpOptions } from './options.js'
export type { OtpOptions, ResolvedOtpOptions } from './options.js'
export { Otp } from './otp.js'
export type { IssueInput, OtpRateLimited, OtpRateLimitReason, VerifyInput, VerifyResult } from './otp.js'
export type { CreateTokenInput, TokenRecord } from './tokens.js'
