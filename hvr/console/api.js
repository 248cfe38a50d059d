// The public API, same origin, with the key the user pasted (sessionStorage only: never in a URL or localStorage).
const KEY = "hvr.apiKey";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getKey() { return sessionStorage.getItem(KEY); }
export function setKey(key) { sessionStorage.setItem(KEY, key); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

function describe(status, body) {
  if (status === 401 || status === 403) {
    const gateway = body && typeof body.message === "string";
    if (status === 401 || gateway) {
      return `This API key is not valid for ${location.origin} (${status}). Check the key and paste it again.`;
    }
  }
  if (body && typeof body === "object") {
    const errors = (body.errors || []).map((e) => `${e.field}: ${e.message}`);
    const reasons = body.reasons || [];
    const head = body.detail || body.title || body.message || `HTTP ${status}`;
    return [head, ...errors, ...reasons].join(" — ");
  }
  return `HTTP ${status}`;
}

export async function api(path, { method = "GET", body, query, key = getKey() } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `The API at ${location.origin} did not answer (${err.message}). Is hvr dev running?`);
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  if (!response.ok) throw new ApiError(response.status, describe(response.status, parsed), parsed);
  return parsed;
}

// A file straight to S3 with the presigned PUT of POST /v1/uploads; returns the s3:// ref for the request.
export async function upload(file) {
  const ticket = await api("/v1/uploads", { method: "POST", body: { content_type: file.type || "application/octet-stream" } });
  if (file.size > ticket.max_bytes) throw new ApiError(413, `${file.name} is over ${ticket.max_bytes} bytes`);
  const put = await fetch(ticket.upload_url, { method: "PUT", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
  if (!put.ok) throw new ApiError(put.status, `uploading ${file.name} failed: HTTP ${put.status}`);
  return ticket.ref;
}
