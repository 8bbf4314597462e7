/* coplay wire frames (DESIGN "Frames"): one msgpack array per payload, the kind first.
 *
 * The same bytes as relay/frames.py (msgspec, array_like): @msgpack/msgpack writes every
 * integer in its smallest encoding, as msgspec does, so each field is forced to an integer
 * of its range here (a float would be written as float64 and refused by the host).
 * Exposes window.CoplayFrames; needs window.MessagePack (vendor/msgpack.min.js).
 */
"use strict";
(function () {
  const MP = window.MessagePack;
  const KIND = Object.freeze({
    INPUT: 1, PING: 2, PONG: 3, HELLO: 4, WELCOME: 5, REJECT: 6, BYE: 7, RUMBLE: 8, HOST_STATE: 9,
  });
  const MAX_PAYLOAD = 512;
  const PROTO = 1;
  const MAX_NAME = 64;
  const WRAP = 4294967296;

  const u32 = (x) => (((Math.floor(x) % WRAP) + WRAP) % WRAP);
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, Math.round(x) || 0));
  const axis = (x) => clamp(x, -32768, 32767);
  const trigger = (x) => clamp(x, 0, 32767);
  // msgspec counts a str's length in code points, so cut by code points too
  const name = (s) => Array.from(String(s || "")).slice(0, MAX_NAME).join("");

  function encodeInput(epoch, seq, t, s) {
    return MP.encode([
      KIND.INPUT, u32(epoch), u32(seq), u32(t), u32(s.buttons),
      axis(s.lx), axis(s.ly), axis(s.rx), axis(s.ry), trigger(s.lt), trigger(s.rt),
    ]);
  }
  const encodePing = (epoch, t) => MP.encode([KIND.PING, u32(epoch), u32(t)]);
  const encodeHello = (epoch, who, controller) =>
    MP.encode([KIND.HELLO, u32(epoch), PROTO, name(who), name(controller)]);
  const encodeBye = (epoch) => MP.encode([KIND.BYE, u32(epoch)]);

  const isU = (x, max) => Number.isInteger(x) && x >= 0 && x <= max;

  /* A host frame as an object ({kind, ...}), or null: too big, not msgpack, unknown kind or
   * out of range (counted by the caller, never thrown). */
  function decode(bytes) {
    if (!bytes || bytes.length > MAX_PAYLOAD) return null;
    let a;
    try {
      a = MP.decode(bytes);
    } catch (e) {
      return null;
    }
    if (!Array.isArray(a) || a.length === 0) return null;
    switch (a[0]) {
      case KIND.PONG:
        if (a.length >= 4 && isU(a[1], WRAP - 1) && isU(a[2], WRAP - 1) && isU(a[3], 255))
          return { kind: KIND.PONG, epoch: a[1], t: a[2], seat: a[3] };
        return null;
      case KIND.WELCOME:
        if (a.length >= 3 && isU(a[1], WRAP - 1) && isU(a[2], 255))
          return { kind: KIND.WELCOME, epoch: a[1], seat: a[2] };
        return null;
      case KIND.REJECT:
        if (a.length >= 4 && isU(a[1], WRAP - 1) && isU(a[2], 255) && typeof a[3] === "string")
          return { kind: KIND.REJECT, epoch: a[1], code: a[2], reason: a[3].slice(0, 128) };
        return null;
      case KIND.RUMBLE:
        if (a.length >= 4 && isU(a[1], 65535) && isU(a[2], 65535) && isU(a[3], 65535))
          return { kind: KIND.RUMBLE, low: a[1], high: a[2], ms: a[3] };
        return null;
      case KIND.HOST_STATE: {
        if (a.length < 3 || typeof a[1] !== "boolean" || !Array.isArray(a[2])) return null;
        const seats = [];
        for (const s of a[2].slice(0, 16)) {
          if (!Array.isArray(s) || !isU(s[0], 255) || typeof s[1] !== "string") return null;
          seats.push({ seat: s[0], user: s[1].slice(0, MAX_NAME) });
        }
        return { kind: KIND.HOST_STATE, online: a[1], seats };
      }
      default:
        return null;
    }
  }

  window.CoplayFrames = Object.freeze({
    KIND, MAX_PAYLOAD, u32, encodeInput, encodePing, encodeHello, encodeBye, decode,
  });
})();
