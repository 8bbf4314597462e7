"""``--window``: a small pygame window with the pad's live state and an RTT sparkline.

Input keeps flowing while it is not focused (``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1``,
set before SDL starts). Closing it stops the guest like Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, Final

from guest.status import StatusView, format_line
from relay.frames import AXIS_MAX, TRIGGER_MAX, Button, PadState

SIZE: Final = (380, 210)
BACKGROUND: Final = (24, 26, 32)
IDLE: Final = (70, 74, 86)
LIT: Final = (90, 220, 120)
TEXT: Final = (220, 222, 228)
SPARK: Final = (120, 170, 250)

# where each button is drawn: centre and radius
BUTTON_SPOTS: Final = {
    Button.A: ((300, 95), 10),
    Button.B: ((325, 70), 10),
    Button.X: ((275, 70), 10),
    Button.Y: ((300, 45), 10),
    Button.DPAD_UP: ((80, 110), 7),
    Button.DPAD_DOWN: ((80, 140), 7),
    Button.DPAD_LEFT: ((65, 125), 7),
    Button.DPAD_RIGHT: ((95, 125), 7),
    Button.BACK: ((160, 40), 6),
    Button.GUIDE: ((190, 40), 8),
    Button.START: ((220, 40), 6),
    Button.LEFTSTICK: ((60, 70), 4),
    Button.RIGHTSTICK: ((235, 125), 4),
}
STICKS: Final = ((60, 70), (235, 125))  # left, right stick centres
STICK_RADIUS: Final = 24


class PadWindow:
    """Draws onto pygame's display surface; call :meth:`draw` from the main loop."""

    def __init__(self, pygame: ModuleType) -> None:
        self._pg = pygame
        self._screen: Any = pygame.display.set_mode(SIZE)
        pygame.display.set_caption("coplay guest")
        pygame.font.init()
        self._font: Any = pygame.font.Font(None, 18)

    def draw(self, view: StatusView, state: PadState, rtt_ms: Sequence[float]) -> None:
        pg, screen = self._pg, self._screen
        screen.fill(BACKGROUND)
        positions = ((state.lx, state.ly), (state.rx, state.ry))
        for (x, y), (sx, sy) in zip(STICKS, positions, strict=True):
            pg.draw.circle(screen, IDLE, (x, y), STICK_RADIUS, 2)
            dot = (x + sx * STICK_RADIUS // (AXIS_MAX + 1), y + sy * STICK_RADIUS // (AXIS_MAX + 1))
            pg.draw.circle(screen, LIT, dot, 6)
        for button, (centre, radius) in BUTTON_SPOTS.items():
            colour = LIT if state.buttons >> button & 1 else IDLE
            pg.draw.circle(screen, colour, centre, radius)
        for i, (button, trigger) in enumerate(
            ((Button.LEFTSHOULDER, state.lt), (Button.RIGHTSHOULDER, state.rt))
        ):
            x = 30 + i * 250
            shoulder = LIT if state.buttons >> button & 1 else IDLE
            pg.draw.rect(screen, shoulder, (x, 12, 70, 8))
            pg.draw.rect(screen, IDLE, (x, 24, 70, 6), 1)
            pg.draw.rect(screen, LIT, (x, 24, 70 * trigger // TRIGGER_MAX, 6))
        self._sparkline(rtt_ms, (20, 160, 340, 22))
        text = self._font.render(format_line(view)[:64], True, TEXT)
        screen.blit(text, (10, 190))
        pg.display.flip()

    def _sparkline(self, values: Sequence[float], box: tuple[int, int, int, int]) -> None:
        x, y, w, h = box
        self._pg.draw.rect(self._screen, IDLE, box, 1)
        if len(values) < 2:
            return
        top = max(*values, 1.0)
        step = w / (len(values) - 1)
        points = [(x + i * step, y + h - 1 - (h - 2) * v / top) for i, v in enumerate(values)]
        self._pg.draw.lines(self._screen, SPARK, False, points, 1)

    def close(self) -> None:
        self._pg.display.quit()
