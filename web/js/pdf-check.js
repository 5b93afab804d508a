// The checks the server makes before spending a stamp, made in the browser first so a person
// learns at once (same rejection codes, same words). pdf.js is imported here, and only here,
// when a PDF is chosen: the first load of the app never carries it.

export const MAX_PDF_BYTES = 800_000;
export const STAMP_MM = 32;
const MM_PER_PT = 25.4 / 72;
const A4_TOLERANCE_MM = 2;
const PDFJS = '/vendor/pdfjs';

let pdfjs = null;
/** Loads pdf.js once (the legacy build: older phone browsers too). */
export function loadPdfJs() {
  pdfjs ??= import(`${PDFJS}/pdf.min.mjs`).then((lib) => {
    lib.GlobalWorkerOptions.workerSrc = `${PDFJS}/pdf.worker.min.mjs`;
    return lib;
  });
  return pdfjs;
}

export class Refusal extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

/** Size and header, before anything is parsed (`%PDF-` within the first 1024 bytes). */
export function checkBytes(bytes) {
  if (bytes.length > MAX_PDF_BYTES) throw new Refusal('too_large');
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 1024));
  if (!head.includes('%PDF-')) throw new Refusal('not_pdf');
}

/** Whether a displayed page size (mm) is A4 in either orientation, within 2 mm. */
export function isA4(widthMm, heightMm) {
  const near = (a, b) => Math.abs(a - b) <= A4_TOLERANCE_MM;
  return (near(widthMm, 210) && near(heightMm, 297)) || (near(widthMm, 297) && near(heightMm, 210));
}

/** Keeps the stamp's top-left corner so that the whole stamp lies on the page. */
export function clampPlacement(x, y, widthMm, heightMm) {
  const clamp = (v, max) => Math.min(Math.max(0, v), Math.max(0, max));
  const round = (v) => Math.round(v * 10) / 10;
  return { x: round(clamp(x, widthMm - STAMP_MM)), y: round(clamp(y, heightMm - STAMP_MM)) };
}

/** Whether the stamp at (x, y) overlaps any of `boxes` ({x, y, w, h} in mm, top-left origin). */
export function overlapsAny(x, y, boxes) {
  return boxes.some((b) => x < b.x + b.w && b.x < x + STAMP_MM && y < b.y + b.h && b.y < y + STAMP_MM);
}

/** Opens the document with pdf.js and checks what the server checks: readable, not encrypted,
 * every page A4. Returns `{doc, pages}`; throws a `Refusal` with the server's code. */
export async function openChecked(bytes) {
  const lib = await loadPdfJs();
  let doc;
  try {
    doc = await lib.getDocument({
      data: bytes.slice(),
      isEvalSupported: false,
      enableXfa: false,
      standardFontDataUrl: `${PDFJS}/standard_fonts/`,
      wasmUrl: `${PDFJS}/wasm/`,
      stopAtErrors: false,
    }).promise;
  } catch (e) {
    if (e?.name === 'PasswordException') throw new Refusal('encrypted');
    throw new Refusal('corrupt');
  }
  const { info } = await doc.getMetadata().catch(() => ({ info: {} }));
  if (info?.EncryptFilterName) throw new Refusal('encrypted');
  for (let n = 1; n <= doc.numPages; n++) {
    const { width, height } = await pageSizeMm(doc, n);
    if (!isA4(width, height)) throw new Refusal('not_a4');
  }
  return { doc, pages: doc.numPages };
}

/** The page as displayed (after /Rotate), in millimetres. */
export async function pageSizeMm(doc, n) {
  const page = await doc.getPage(n);
  const viewport = page.getViewport({ scale: 1 });
  return { width: viewport.width * MM_PER_PT, height: viewport.height * MM_PER_PT, page };
}

/** A point of user space on the displayed page (the viewport's affine transform). */
function toViewport([a, b, c, d, e, f], x, y) {
  return [a * x + c * y + e, b * x + d * y + f];
}

/** The signature widgets of a page as boxes in displayed millimetres (top-left origin). */
export async function signatureBoxes(page) {
  const viewport = page.getViewport({ scale: 1 });
  const annotations = await page.getAnnotations({ intent: 'display' }).catch(() => []);
  return annotations
    .filter((a) => a.annotationType === 20 && a.fieldType === 'Sig' && Array.isArray(a.rect))
    .map((a) => {
      const [x1, y1] = toViewport(viewport.transform, a.rect[0], a.rect[1]);
      const [x2, y2] = toViewport(viewport.transform, a.rect[2], a.rect[3]);
      const x = Math.min(x1, x2), y = Math.min(y1, y2);
      return { x: x * MM_PER_PT, y: y * MM_PER_PT, w: Math.abs(x2 - x1) * MM_PER_PT, h: Math.abs(y2 - y1) * MM_PER_PT };
    })
    .filter((b) => b.w > 0 && b.h > 0);
}
