// Is the server there? One watcher for the whole page: any failed request or dropped event stream makes it
// probe /healthz every second, show "reconnecting", and tell the views when the server answers again.

const PROBE_INTERVAL_MS = 1000;
const READY_INTERVAL_MS = 30000;

class Connection extends EventTarget {
  constructor() {
    super();
    this.online = true;
    this._probing = false;
    this._banner = null;
    this._ready = null;
  }

  /** Attach to the page's banners; start the periodic readiness check. */
  mount({ banner, ready }) {
    this._banner = banner;
    this._ready = ready;
    this._checkReady();
    setInterval(() => this.online && this._checkReady(), READY_INTERVAL_MS);
  }

  /** A request got an answer: the server is there. */
  succeeded() {
    if (!this.online && !this._probing) this._setOnline(true);
  }

  /** A request or stream failed for want of a server: confirm, and probe until it returns. */
  failed() {
    if (this._probing) return;
    this._probing = true;
    this._probe(true);
  }

  async _probe(first) {
    const alive = await this._alive();
    if (alive) {
      this._probing = false;
      if (!this.online) this._setOnline(true);
      return;
    }
    if (this.online || first) this._setOnline(false);
    setTimeout(() => this._probe(false), PROBE_INTERVAL_MS);
  }

  async _alive() {
    try {
      const response = await fetch("/healthz", { cache: "no-store" });
      return response.ok;
    } catch {
      return false;
    }
  }

  async _checkReady() {
    if (!this._ready) return;
    try {
      const response = await fetch("/readyz", { cache: "no-store" });
      if (response.ok) {
        this._ready.hidden = true;
        return;
      }
      const body = await response.json().catch(() => ({}));
      this._ready.textContent = `The server is up but not ready: ${body.detail || response.status}. `
        + "Jobs may wait until it recovers.";
      this._ready.hidden = false;
    } catch {
      // Unreachable is the reconnecting banner's business.
    }
  }

  _setOnline(online) {
    const was = this.online;
    this.online = online;
    if (this._banner) {
      this._banner.hidden = online;
      this._banner.textContent = online ? "" : "Connection to the server lost — reconnecting…";
    }
    document.documentElement.classList.toggle("offline", !online);
    if (online && !was) {
      this._checkReady();
      this.dispatchEvent(new Event("reconnected"));
    }
    if (!online && was) this.dispatchEvent(new Event("disconnected"));
  }
}

export const connection = new Connection();
