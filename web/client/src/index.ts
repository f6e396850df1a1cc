export { AttachmentsClient, contentDisposition } from "./client";
export type {
  Attachment,
  ClientOptions,
  DownloadUrl,
  DownloadUrlRequest,
  Me,
  ScanStatus,
  Session,
  TokenResponse,
  UploadOptions,
  UploadSession,
  VirusScanStatus,
} from "./client";
export { ApiProblem } from "./problem";
export type { ClientCode, ProblemCode, ServerCode } from "./problem";
export type { Transport } from "./transfer";
