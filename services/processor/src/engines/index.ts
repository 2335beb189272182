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
  renderPages,
  renderPageImages,
  THUMBNAIL_WIDTH_PX,
  PREVIEW_DPI,
  type PdfCallOptions,
  type PdfInfo,
  type PdfPageSize,
  type PageImagesOptions,
  type RenderOptions,
} from "./pdf.ts";
export { toWebp, imageSize, writeRawAsPng, encodePageImages, type PageImages, WEBP_QUALITY, PNG_COMPRESSION_LEVEL, type ImageSize, type RawImage } from "./images.ts";
export { convertPptxToPdf, type ConvertOptions } from "./pptx.ts";
export { runTool, type RunOptions, type RunResult } from "./run.ts";
