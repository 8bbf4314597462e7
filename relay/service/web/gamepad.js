/* Pad state from the W3C Gamepad API "standard" mapping or the keyboard, as SDL numbers it.
 *
 * The standard mapping (https://w3c.github.io/gamepad/#remapping): buttons 0-3 A B X Y,
 * 4/5 shoulders, 6/7 the triggers (their analog value), 8 BACK, 9 START, 10/11 stick
 * clicks, 12-15 D-pad up/down/left/right, 16 GUIDE; axes 0-3 lx ly rx ry in -1..1 (up and
 * left negative, as in SDL). Exposes window.CoplayPad.
 */
"use strict";
(function () {
  const SDL = Object.freeze({
    A: 0, B: 1, X: 2, Y: 3, BACK: 4, GUIDE: 5, START: 6, LEFTSTICK: 7, RIGHTSTICK: 8,
    LEFTSHOULDER: 9, RIGHTSHOULDER: 10, DPAD_UP: 11, DPAD_DOWN: 12, DPAD_LEFT: 13,
    DPAD_RIGHT: 14,
  });
  // standard-mapping button index -> SDL button (6 and 7 are the triggers, read as axes)
  const STANDARD_BUTTONS = Object.freeze({
    0: SDL.A, 1: SDL.B, 2: SDL.X, 3: SDL.Y, 4: SDL.LEFTSHOULDER, 5: SDL.RIGHTSHOULDER,
    8: SDL.BACK, 9: SDL.START, 10: SDL.LEFTSTICK, 11: SDL.RIGHTSTICK, 12: SDL.DPAD_UP,
    13: SDL.DPAD_DOWN, 14: SDL.DPAD_LEFT, 15: SDL.DPAD_RIGHT, 16: SDL.GUIDE,
  });
  const NEUTRAL = Object.freeze({ buttons: 0, lx: 0, ly: 0, rx: 0, ry: 0, lt: 0, rt: 0 });

  const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
  // -1..1 -> SDL's -32768..32767 (both ends reachable)
  function axis(v) {
    const x = Math.max(-1, Math.min(1, num(v)));
    return x < 0 ? Math.round(x * 32768) : Math.round(x * 32767);
  }
  const trigger = (v) => Math.round(Math.max(0, Math.min(1, num(v))) * 32767);

  function fromGamepad(gp) {
    let buttons = 0;
    const b = gp.buttons || [];
    for (const index in STANDARD_BUTTONS) {
      const button = b[index];
      if (button && (button.pressed || num(button.value) >= 0.5)) {
        buttons |= 1 << STANDARD_BUTTONS[index];
      }
    }
    const a = gp.axes || [];
    return {
      buttons: buttons >>> 0,
      lx: axis(a[0]), ly: axis(a[1]), rx: axis(a[2]), ry: axis(a[3]),
      lt: trigger(b[6] && b[6].value), rt: trigger(b[7] && b[7].value),
    };
  }

  /* The keyboard map (README "Browser guest"); KeyboardEvent.code, so it is the same key
   * on every layout. Buttons are SDL numbers; sticks and triggers go to full deflection. */
  const KEY_BUTTONS = Object.freeze({
    KeyK: SDL.A, KeyL: SDL.B, KeyJ: SDL.X, KeyI: SDL.Y,
    KeyQ: SDL.LEFTSHOULDER, KeyE: SDL.RIGHTSHOULDER,
    Backspace: SDL.BACK, Enter: SDL.START, KeyF: SDL.LEFTSTICK, KeyH: SDL.RIGHTSTICK,
    ArrowUp: SDL.DPAD_UP, ArrowDown: SDL.DPAD_DOWN, ArrowLeft: SDL.DPAD_LEFT,
    ArrowRight: SDL.DPAD_RIGHT,
  });
  const KEY_AXES = Object.freeze({
    KeyA: ["lx", -32768], KeyD: ["lx", 32767], KeyW: ["ly", -32768], KeyS: ["ly", 32767],
    Numpad4: ["rx", -32768], Numpad6: ["rx", 32767], Numpad8: ["ry", -32768],
    Numpad2: ["ry", 32767], KeyZ: ["lt", 32767], KeyC: ["rt", 32767],
  });
  const isMapped = (code) => code in KEY_BUTTONS || code in KEY_AXES;

  function fromKeys(held) {
    const s = { buttons: 0, lx: 0, ly: 0, rx: 0, ry: 0, lt: 0, rt: 0 };
    for (const code of held) {
      if (code in KEY_BUTTONS) s.buttons |= 1 << KEY_BUTTONS[code];
      else if (code in KEY_AXES) {
        const [field, value] = KEY_AXES[code];
        s[field] = s[field] === -value ? 0 : value; // opposite keys together cancel out
      }
    }
    s.buttons >>>= 0;
    return s;
  }

  const same = (a, b) =>
    a.buttons === b.buttons && a.lx === b.lx && a.ly === b.ly && a.rx === b.rx &&
    a.ry === b.ry && a.lt === b.lt && a.rt === b.rt;

  /* The pad to play with: the first connected one, preferring the standard mapping. */
  function choose(pads) {
    let fallback = null;
    for (const gp of pads || []) {
      if (!gp || gp.connected === false) continue;
      if (gp.mapping === "standard") return gp;
      fallback = fallback || gp;
    }
    return fallback;
  }

  window.CoplayPad = Object.freeze({
    SDL, NEUTRAL, STANDARD_BUTTONS, KEY_BUTTONS, KEY_AXES, fromGamepad, fromKeys, isMapped,
    same, choose,
  });
})();
