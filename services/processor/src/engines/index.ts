/**
 * The processor's engines behind small interfaces: poppler for PDF text and
 * rendering, sharp for image encoding, LibreOffice for PPTX -> PDF. All CPU
 * work runs in child processes (poppler, LibreOffice) or on libuv's threadpool
 * (sharp), never on the event loop.
 */
export {
  inspectPdf,
  countFontsAndImages,
  pageSizes,
  extractText,
  renderPageImages,
  THUMBNAIL_WIDTH_PX,
  PREVIEW_DPI,
  type PdfCallOptions,
  type PdfInfo,
  type PdfPageSize,
  type PageImagesOptions,
} from "./pdf.ts";
export { encodePageImages, type PageImages, WEBP_QUALITY, PNG_COMPRESSION_LEVEL, type RawImage } from "./images.ts";
export { convertPptxToPdf, type ConvertOptions } from "./pptx.ts";
export { runTool, type RunOptions, type RunResult } from "./run.ts";
