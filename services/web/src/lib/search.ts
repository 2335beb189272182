/** Text search over extracted page text: matching, snippets and highlighting. */

export interface Segment {
  text: string;
  match: boolean;
}

/** What people typed, ready to compare: trimmed, lower case, inner whitespace collapsed. */
export function normalizeQuery(query: string): string {
  return query.trim().replace(/\s+/g, " ").toLowerCase();
}

function collapse(text: string): string {
  return text.replace(/\s+/g, " ");
}

/** Splits `text` into plain and matching parts (every occurrence of `query`, case-insensitive). */
export function highlight(text: string, query: string): Segment[] {
  const needle = normalizeQuery(query);
  if (!needle) return [{ text, match: false }];
  const haystack = text.toLowerCase();
  const segments: Segment[] = [];
  let from = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length)) {
    if (at > from) segments.push({ text: text.slice(from, at), match: false });
    segments.push({ text: text.slice(at, at + needle.length), match: true });
    from = at + needle.length;
  }
  if (from < text.length) segments.push({ text: text.slice(from), match: false });
  return segments;
}

/** Whether the page text contains the query. Whitespace differences (line breaks) do not matter. */
export function matches(text: string, query: string): boolean {
  const needle = normalizeQuery(query);
  return needle !== "" && collapse(text).toLowerCase().includes(needle);
}

/** A short excerpt around the first match, with the matches highlighted; null when there is none. */
export function snippet(text: string, query: string, radius = 48): Segment[] | null {
  const needle = normalizeQuery(query);
  if (!needle) return null;
  const flat = collapse(text);
  const at = flat.toLowerCase().indexOf(needle);
  if (at === -1) return null;
  const start = Math.max(0, at - radius);
  const end = Math.min(flat.length, at + needle.length + radius);
  const excerpt = `${start > 0 ? "…" : ""}${flat.slice(start, end).trim()}${end < flat.length ? "…" : ""}`;
  return highlight(excerpt, needle);
}
