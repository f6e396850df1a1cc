export { AttachmentsClient, contentDisposition } from "./client";
export type {
  Attachment,
  ClientOptions,
  DownloadUrl,
  DownloadUrlRequest,
  LargeUploadPath,
  Me,
  ResumeStore,
  MessageList,
  MessageSummary,
  ScanStatus,
  Session,
  TokenResponse,
  UploadOptions,
  UploadPath,
  UploadSession,
  VirusScanStatus,
} from "./client";
export { ApiProblem } from "./problem";
export type { ClientCode, ProblemCode, ServerCode } from "./problem";
export type { Transport } from "./transfer";
