/* coplay browser guest: open the join link, press a button, play (DESIGN "Browser guest").
 *
 * 1. The invite code is the link's fragment (never sent to any server in a request line).
 *    It is redeemed once at POST /openapi/rm/invite/redeem; the grant it returns (an app
 *    credential bound to one username and session) is kept in localStorage under a hash of
 *    the code, so a reload does not spend another use of the link.
 * 2. Two-step token flow with that credential: app token, then a user token for
 *    cid = "{device}@{app_id}" (device: a stable id in localStorage, per username).
 * 3. MQTT over WebSocket to the grant's ws_url (mqtt.js), Last Will = Bye.
 * 4. A guest by DESIGN's rules: Hello every second until Welcome, Ping every second, Input
 *    at once on every change (Gamepad API polled every few ms while visible, at most
 *    MAX_RATE_HZ) and keyframes at RATE_HZ, Bye on leaving, Rumble on the pad, neutral at
 *    once when the tab is hidden or frozen, a fresh token before the old one expires.
 */
"use strict";
(function () {
  const F = window.CoplayFrames;
  const P = window.CoplayPad;
  const $ = (id) => document.getElementById(id);

  const RATE_HZ = 60; // keyframes while nothing changes
  const MAX_RATE_HZ = 500; // at most this many Input frames a second
  const POLL_MS = 2; // the pad is read this often while the tab is visible
  const PING_MS = 1000;
  const HELLO_MS = 1000;
  const RUMBLE_CAP_MS = 2000; // a lost "stop" never leaves the pad shaking longer
  const TOKEN_LIFETIME_S = 600;
  const TOKEN_REFRESH_AT = 0.8; // of the lifetime
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 15000;
  const MAX_QUEUE = 64; // changes waiting for the rate limit
  const RTT_SAMPLES = 32;
  const MAX_RTT_US = 30000000;
  const REJECT = { NOT_ALLOWED: 1, FULL: 2, PROTOCOL: 3, SEAT_TAKEN: 4, REPLACED: 5 };
  const FINAL_REJECTS = new Set([REJECT.NOT_ALLOWED, REJECT.PROTOCOL, REJECT.REPLACED]);
  const REDEEM_PATH = "/openapi/rm/invite/redeem";
  const APP_TOKEN_PATH = "/openapi/rm/app/token";
  const USER_TOKEN_PATH = "/openapi/rm/user/token";
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

  const nowUs32 = () => F.u32((performance.timeOrigin + performance.now()) * 1000);

  // ------------------------------------------------------------------ what the friend sees

  const view = {
    state: "starting",
    problem: "",
    seat: null,
    host: "unknown", // unknown | online | offline
    seats: [],
    controller: "",
    notice: "",
    rtt: [],
  };

  function say(state, problem) {
    view.state = state;
    if (problem !== undefined) view.problem = problem;
    render();
  }

  function median(xs) {
    const s = xs.slice().sort((a, b) => a - b);
    return s.length ? s[Math.floor(s.length / 2)] : null;
  }

  function jitter(xs) {
    if (xs.length < 2) return null;
    let sum = 0;
    for (let i = 1; i < xs.length; i++) sum += Math.abs(xs[i] - xs[i - 1]);
    return sum / (xs.length - 1);
  }

  const ms = (us) => (us === null ? "-" : (us / 1000).toFixed(1) + " ms");

  function render() {
    $("state").textContent = view.state;
    $("problem").textContent = view.problem;
    $("problem").hidden = !view.problem;
    $("seat").textContent = view.seat === null ? "none yet" : String(view.seat);
    $("host").textContent =
      view.host === "online" ? "online" : view.host === "offline" ? "offline" : "not heard from";
    $("rtt").textContent = ms(median(view.rtt));
    $("jitter").textContent = ms(jitter(view.rtt));
    $("controller").textContent = view.controller;
    $("notice").textContent = view.notice;
    $("notice").hidden = !view.notice;
  }

  // ------------------------------------------------------------------ the pad picture

  let padSvg = null;

  async function loadPicture() {
    const holder = $("pad");
    try {
      const reply = await fetch(holder.dataset.src);
      const doc = new DOMParser().parseFromString(await reply.text(), "image/svg+xml");
      padSvg = document.importNode(doc.documentElement, true);
      holder.appendChild(padSvg);
    } catch (e) {
      padSvg = null; // the page works without its picture
    }
  }

  function drawPad(s) {
    if (!padSvg) return;
    for (let bit = 0; bit <= 14; bit++) {
      const el = padSvg.getElementById("btn-" + bit);
      if (el) el.classList.toggle("lit", (s.buttons & (1 << bit)) !== 0);
    }
    const stick = (id, x, y) => {
      const el = padSvg.getElementById(id);
      if (el) el.setAttribute("transform", `translate(${(x / 32768) * 14} ${(y / 32768) * 14})`);
      const cap = padSvg.getElementById(id + "-cap");
      if (cap) cap.classList.toggle("lit", x !== 0 || y !== 0);
    };
    stick("stick-l", s.lx, s.ly);
    stick("stick-r", s.rx, s.ry);
    const trig = (id, v) => {
      const el = padSvg.getElementById(id);
      if (el) el.setAttribute("height", String(Math.round((v / 32767) * 24)));
    };
    trig("trig-l", s.lt);
    trig("trig-r", s.rt);
  }

  // ------------------------------------------------------------------ HTTP

  class ApiRefused extends Error {
    constructor(status, text) {
      super(text);
      this.status = status;
    }
  }

  async function post(path, body, auth) {
    const headers = { "Content-Type": "application/json" };
    if (auth) headers.Authorization = auth;
    let reply;
    try {
      reply = await fetch(path, {
        method: "POST", headers, body: JSON.stringify(body), cache: "no-store",
        credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new ApiRefused(0, "network");
    }
    let data = null;
    try {
      data = await reply.json();
    } catch (e) {
      data = null;
    }
    if (!reply.ok || !data || data.code !== 200) {
      const text = data && typeof data.body === "string" ? data.body : "HTTP " + reply.status;
      throw new ApiRefused(reply.status, text);
    }
    return data.body;
  }

  // ------------------------------------------------------------------ the grant

  async function codeKey(code) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(code));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0"));
    return "coplay.grant." + hex.join("").slice(0, 32);
  }

  function validGrant(g) {
    return (
      g && typeof g.appClientId === "string" && typeof g.appClientSecret === "string" &&
      NAME_RE.test(g.app_id) && NAME_RE.test(g.username) && NAME_RE.test(g.session) &&
      typeof g.topic_prefix === "string" && typeof g.ws_url === "string"
    );
  }

  async function grantFor(code) {
    const key = await codeKey(code);
    try {
      const kept = JSON.parse(localStorage.getItem(key) || "null");
      if (kept && validGrant(kept.grant) && Date.now() < kept.until) return kept.grant;
    } catch (e) {
      localStorage.removeItem(key);
    }
    say("Redeeming the invite…");
    const grant = await post(REDEEM_PATH, { invite: code });
    if (!validGrant(grant)) throw new ApiRefused(500, "the relay sent an unexpected answer");
    const lifetime = Number.isFinite(grant.expires_in) ? grant.expires_in : 86400;
    localStorage.setItem(key, JSON.stringify({ grant, until: Date.now() + lifetime * 1000 }));
    return grant;
  }

  function deviceId(username) {
    const key = "coplay.device." + username;
    let id = localStorage.getItem(key);
    if (!id || !NAME_RE.test(id)) {
      const bytes = crypto.getRandomValues(new Uint8Array(8));
      id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem(key, id);
    }
    return id;
  }

  // ------------------------------------------------------------------ tokens

  class Tokens {
    constructor(grant, cid) {
      this.grant = grant;
      this.cid = cid;
      this.app = null; // {token, until}
      this.user = null;
      this.timer = null;
    }

    forget() {
      this.app = null;
      this.user = null;
    }

    async userToken() {
      const now = Date.now();
      if (this.user && now < this.user.until) return this.user.token;
      if (!this.app || now >= this.app.until) {
        const body = await post(APP_TOKEN_PATH, {
          appClientId: this.grant.appClientId, appClientSecret: this.grant.appClientSecret,
        });
        this.app = { token: body.access_token, until: now + life(body, 3600) };
      }
      let body;
      try {
        body = await post(
          USER_TOKEN_PATH,
          { username: this.grant.username, expires_in: TOKEN_LIFETIME_S, cid: this.cid },
          this.app.token,
        );
      } catch (e) {
        if (e.status === 401) this.app = null; // the app token may have ended: next time anew
        throw e;
      }
      const lifetime = life(body, TOKEN_LIFETIME_S);
      this.user = { token: body.access_token, until: now + lifetime };
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), lifetime);
      return this.user.token;
    }

    // a fresh token before this one expires, for the next CONNECT (the broker checks it there)
    async refresh() {
      this.user = null;
      try {
        await this.userToken();
      } catch (e) {
        if (e.status === 401 || e.status === 403) lost(e);
        else this.timer = setTimeout(() => this.refresh(), RETRY_MIN_MS * 5);
      }
    }
  }

  // milliseconds until we want a new token: a share of its lifetime (missing -> the asked one)
  function life(body, askedS) {
    const s = Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : askedS;
    return s * 1000 * TOKEN_REFRESH_AT;
  }

  // ------------------------------------------------------------------ the guest

  const epoch = crypto.getRandomValues(new Uint32Array(1))[0];
  let grant = null;
  let tokens = null;
  let topics = null;
  let client = null;
  let connected = false;
  let stopped = false;
  let retryMs = RETRY_MIN_MS;
  let seq = 0;
  let seated = false;
  let hidden = document.visibilityState === "hidden";
  const held = new Set(); // keyboard codes held
  let queue = [];
  let sent = P.NEUTRAL; // the state the host has
  let lastSend = -Infinity;
  let nextKey = 0;
  let lastPoll = null;
  // poll gaps while visible: how many, how many over 4 ms, the longest (since pollReset)
  const stats = { inputs: 0, pings: 0, pongs: 0, rumbles: 0, dropped: 0, polls: 0, gapsOver4ms: 0, maxGapMs: 0 };
  let lastRumble = null;

  function publish(payload, qos) {
    if (!client || !connected) return false;
    client.publish(topics.in, payload, { qos, retain: false });
    return true;
  }

  function sendInput(state, now) {
    sent = state;
    lastSend = now;
    const next = (seq + 1) % 4294967296;
    if (publish(F.encodeInput(epoch, next, nowUs32(), state), 0)) {
      seq = next;
      stats.inputs++;
    }
  }

  function sendHello() {
    if (!connected || seated) return;
    publish(F.encodeHello(epoch, grant.username, view.controller || "keyboard"), 1);
  }

  function sendPing() {
    if (publish(F.encodePing(epoch, nowUs32()), 0)) stats.pings++;
  }

  function currentPad() {
    if (!navigator.getGamepads) return null;
    try {
      return P.choose(navigator.getGamepads());
    } catch (e) {
      return null;
    }
  }

  function readState() {
    if (hidden) return P.NEUTRAL;
    const gp = currentPad();
    let controller;
    let state;
    if (gp) {
      state = P.fromGamepad(gp);
      controller = gp.id;
      view.notice =
        gp.mapping === "standard"
          ? ""
          : `Your pad "${gp.id}" has no standard mapping in this browser, so its buttons ` +
            "may not match A/B/X/Y; try another browser or the keyboard.";
    } else {
      state = P.fromKeys(held);
      controller = "keyboard";
      if (view.notice.startsWith("Your pad")) view.notice = "";
    }
    if (controller !== view.controller) {
      view.controller = controller;
      render();
    }
    return state;
  }

  // one pass of the input loop: poll, queue a change, send what is due
  function tick() {
    const now = performance.now();
    if (lastPoll !== null && !hidden) {
      const gap = now - lastPoll;
      stats.polls++;
      if (gap > 4) stats.gapsOver4ms++;
      stats.maxGapMs = Math.max(stats.maxGapMs, gap);
    }
    lastPoll = now;
    const state = readState();
    const last = queue.length ? queue[queue.length - 1] : sent;
    if (!P.same(state, last)) {
      if (queue.length >= MAX_QUEUE) queue.shift();
      queue.push(state);
    }
    pump(now);
  }

  // as guest/sender.py: a change at once (at most MAX_RATE_HZ), else keyframes on a fixed
  // schedule (a late poll does not shift the later ones, unless so late it would burst)
  function pump(now) {
    if (queue.length) {
      if (now - lastSend < 1000 / MAX_RATE_HZ) return;
      sendInput(queue.shift(), now);
      nextKey = now + 1000 / RATE_HZ;
    } else if (now >= nextKey) {
      const late = now - nextKey;
      sendInput(sent, now);
      nextKey = (late < 1000 / RATE_HZ ? nextKey : now) + 1000 / RATE_HZ;
    }
  }

  // the tab went away or froze: the host must see nothing held, now
  function goNeutral() {
    hidden = true;
    held.clear();
    queue = [];
    const now = performance.now();
    sendInput(P.NEUTRAL, now);
    nextKey = now + 1000 / RATE_HZ;
  }

  function onFrame(payload) {
    const frame = F.decode(payload);
    if (!frame) {
      stats.dropped++;
      return;
    }
    switch (frame.kind) {
      case F.KIND.WELCOME:
        if (frame.epoch !== epoch) return;
        seated = true;
        view.seat = frame.seat;
        say(`Playing in seat ${frame.seat}`, "");
        break;
      case F.KIND.PONG: {
        if (frame.epoch !== epoch) return;
        stats.pongs++;
        const rtt = F.u32(nowUs32() - frame.t);
        if (rtt < MAX_RTT_US) {
          view.rtt.push(rtt);
          if (view.rtt.length > RTT_SAMPLES) view.rtt.shift();
        }
        if (!seated && frame.seat) {
          seated = true;
          view.seat = frame.seat;
          say(`Playing in seat ${frame.seat}`, "");
        }
        render();
        break;
      }
      case F.KIND.REJECT:
        if (frame.epoch !== epoch) return;
        seated = false;
        view.seat = null;
        if (frame.code === REJECT.REPLACED) {
          fail("You joined again from another tab or device, which took over this seat.");
        } else if (frame.code === REJECT.NOT_ALLOWED) {
          fail(`The host does not let ${grant.username} play: ${frame.reason}`);
        } else if (frame.code === REJECT.PROTOCOL) {
          fail(`This page and the host speak different protocol versions: ${frame.reason}`);
        } else {
          say("Waiting for a seat", `All seats are taken (${frame.reason}); you get the first one that frees up.`);
        }
        break;
      case F.KIND.RUMBLE:
        rumble(frame.low, frame.high, frame.ms);
        break;
      case F.KIND.HOST_STATE: {
        view.host = frame.online ? "online" : "offline";
        view.seats = frame.seats;
        const mine = frame.seats.find((s) => s.user === grant.username);
        if (!frame.online) {
          seated = false;
          view.seat = null;
          say("Waiting for the host", "The streamer's host is offline: you will be seated as soon as it is back.");
        } else if (view.state === "Waiting for the host") {
          say("Connected, asking the host for a seat", "");
        }
        if (frame.online && !mine && seated) {
          seated = false; // our seat was freed (idle, or the host restarted): ask again
          view.seat = null;
          say("Connected, asking the host for a seat");
        }
        render();
        break;
      }
      default:
        break;
    }
  }

  function rumble(low, high, durationMs) {
    stats.rumbles++;
    const gp = currentPad();
    const actuator = gp && gp.vibrationActuator;
    lastRumble = { low, high, ms: Math.min(durationMs, RUMBLE_CAP_MS), played: false };
    if (!actuator || typeof actuator.playEffect !== "function") return;
    try {
      if (durationMs === 0 || (low === 0 && high === 0)) {
        if (typeof actuator.reset === "function") actuator.reset();
      } else {
        actuator.playEffect("dual-rumble", {
          startDelay: 0,
          duration: Math.min(durationMs, RUMBLE_CAP_MS),
          strongMagnitude: low / 65535,
          weakMagnitude: high / 65535,
        });
      }
      lastRumble.played = true;
    } catch (e) {
      lastRumble.played = false;
    }
  }

  // ------------------------------------------------------------------ connection

  function retryLater(state, problem) {
    const wait = Math.round(retryMs * (0.75 + Math.random() * 0.5));
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    say(state, problem.replace("{s}", String(Math.max(1, Math.round(wait / 1000)))));
    setTimeout(connect, wait);
  }

  function lost(error) {
    if (error.status === 401 || error.status === 403) {
      fail("The streamer revoked your invite (or it expired): ask them for a new link to play again.");
    } else if (error.status === 0) {
      retryLater("Relay unreachable", `Cannot reach the relay at ${location.origin}: retrying in {s} s.`);
    } else {
      retryLater("Relay error", `The relay answered "${error.message}": retrying in {s} s.`);
    }
  }

  async function connect() {
    if (stopped) return;
    let password;
    say("Getting a token…");
    try {
      password = await tokens.userToken();
    } catch (e) {
      lost(e);
      return;
    }
    if (stopped) return;
    say("Connecting to the broker…");
    let refused = false;
    const c = window.mqtt.connect(grant.ws_url, {
      clientId: tokens.cid,
      username: grant.username,
      password,
      protocolVersion: 4,
      clean: true,
      keepalive: 10,
      reconnectPeriod: 0, // reconnecting is ours: it may need a new token first
      connectTimeout: 5000,
      timerVariant: "native", // its default starts a Worker from a blob: URL, which the CSP forbids
      will: { topic: topics.in, payload: F.encodeBye(epoch), qos: 1, retain: false },
    });
    client = c;
    c.on("connect", () => {
      connected = true;
      retryMs = RETRY_MIN_MS;
      seated = false;
      c.subscribe([topics.out, topics.host], { qos: 1 });
      say("Connected, asking the host for a seat", view.host === "offline" ? view.problem : "");
      sendHello();
    });
    c.on("message", (_topic, payload) => onFrame(payload));
    c.on("error", (err) => {
      // CONNACK 4/5: the token is no longer good (expired, or the invite was revoked)
      if (err && (err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135)) {
        refused = true;
        tokens.forget();
      }
    });
    c.on("close", () => {
      if (client !== c) return;
      const was = connected;
      connected = false;
      seated = false;
      view.seat = null;
      c.end(true);
      client = null;
      if (stopped) return;
      if (refused) {
        setTimeout(connect, 0);
        say("The broker refused the token; getting a new one…");
      } else {
        // closed before a CONNACK could say why: the next try asks for a new token, which
        // also tells a revoked invite (401) from a broker that is down
        if (!was) tokens.user = null;
        retryLater(
          was ? "Connection lost" : "Broker unreachable",
          `Cannot reach the relay's broker at ${grant.ws_url}: retrying in {s} s.`,
        );
      }
    });
  }

  function fail(sentence) {
    stopped = true;
    seated = false;
    say("Stopped", sentence);
    if (client) {
      const c = client;
      client = null;
      connected = false;
      c.end(true);
    }
  }

  function leave() {
    if (stopped) return;
    stopped = true;
    if (client && connected) {
      publish(F.encodeBye(epoch), 1); // a clean leave; if it is lost, the Last Will says Bye
      client.end(false);
    }
  }

  // ------------------------------------------------------------------ start

  /* Repeating work without repeating timers. Browsers clamp a timer nested five deep (any
   * setInterval after a few runs) to 4 ms, and in a tab hidden for a while let it wake only
   * once a minute. Here each run is a message task that arms the next one-shot timer, so no
   * timer is ever nested: polls stay POLL_MS apart while visible, Pings a second apart in a
   * hidden tab (so the host keeps the seat), and mqtt.js's setTimeout(0) before each socket
   * write is not clamped to 4 ms (it was: 4 ms on every frame). */
  const lane = new MessageChannel();
  const jobs = []; // at most one job per chain waits here
  lane.port1.onmessage = () => {
    const job = jobs.shift();
    if (job) job();
  };
  function every(ms, fn) {
    const arm = () => {
      jobs.push(run); // in the timer task: hand the work to a message task
      lane.port2.postMessage(0);
    };
    const run = () => {
      try {
        fn();
      } finally {
        setTimeout(arm, ms); // armed from a message task: nesting level 1
      }
    };
    setTimeout(arm, ms);
  }

  function listen() {
    const timers = () => {
      every(POLL_MS, tick);
      every(PING_MS, sendPing);
      every(HELLO_MS, sendHello);
    };
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") goNeutral();
      else {
        hidden = false;
        lastPoll = null;
      }
    });
    document.addEventListener("freeze", goNeutral);
    document.addEventListener("resume", () => {
      hidden = document.visibilityState === "hidden";
    });
    window.addEventListener("blur", () => held.clear());
    window.addEventListener("pagehide", leave);
    // back from the back/forward cache after a Bye: start over with a new epoch
    window.addEventListener("pageshow", (e) => e.persisted && location.reload());
    window.addEventListener("keydown", (e) => {
      if (!P.isMapped(e.code) || e.ctrlKey || e.altKey || e.metaKey) return;
      e.preventDefault();
      held.add(e.code);
    });
    window.addEventListener("keyup", (e) => {
      if (!held.delete(e.code)) return;
      e.preventDefault();
    });
    const draw = () => {
      drawPad(sent);
      requestAnimationFrame(draw);
    };
    requestAnimationFrame(draw);
    timers();
  }

  async function main() {
    render();
    loadPicture();
    const code = location.hash.slice(1);
    if (!code) {
      say("Stopped", "This page needs the whole join link from the streamer: the part after # is missing.");
      return;
    }
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      say("Stopped", "This page is not in a secure context: open the join link over https:// or on localhost.");
      return;
    }
    try {
      grant = await grantFor(code);
    } catch (e) {
      if (e.status === 401) {
        say("Stopped", "This join link is used up, expired or revoked: ask the streamer for a new one.");
      } else if (e.status === 0) {
        say("Stopped", `Cannot reach the relay at ${location.origin}: check your connection and reload.`);
      } else {
        say("Stopped", `The relay refused the invite: ${e.message}`);
      }
      return;
    }
    if (!grant.ws_url) {
      say("Stopped", "This relay does not accept browser guests: its WebSocket listener is off.");
      return;
    }
    const p = grant.topic_prefix;
    topics = {
      in: `${p}/${grant.session}/in/${grant.username}`,
      out: `${p}/${grant.session}/out/${grant.username}`,
      host: `${p}/${grant.session}/host`,
    };
    $("user").textContent = grant.username;
    $("session").textContent = grant.session;
    tokens = new Tokens(grant, `${deviceId(grant.username)}@${grant.app_id}`);
    listen();
    connect();
  }

  window.coplayPollReset = () => {
    stats.polls = 0;
    stats.gapsOver4ms = 0;
    stats.maxGapMs = 0;
  };

  // a snapshot for people debugging the page (and its tests); never a secret
  window.coplayStatus = () => ({
    state: view.state,
    problem: view.problem,
    seat: view.seat,
    host: view.host,
    controller: view.controller,
    connected,
    clientId: tokens ? tokens.cid : null,
    epoch,
    seq,
    hidden,
    sent: Object.assign({}, sent),
    lastRumble: lastRumble && Object.assign({}, lastRumble),
    stats: Object.assign({}, stats),
  });

  window.addEventListener("hashchange", () => location.reload()); // another link pasted in
  main();
})();
