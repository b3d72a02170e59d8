"""Small Qt widgets of the training window: the X-ray monitor, the image history strip, the
traces of the needle's readings and the keyboard help overlay."""

from __future__ import annotations

import numpy as np
import time

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPainterPath, QPen, QPixmap
from PyQt6.QtWidgets import QLabel, QListView, QListWidget, QListWidgetItem, QSizePolicy, QWidget


def grey_pixmap(grey: np.ndarray, side_px: int, device_pixel_ratio: float = 1.0) -> QPixmap:
    """A square pixmap of a grey image, ``side_px`` logical pixels wide, sharp on high-DPI screens
    (drawn at the screen's own pixel density)."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    h, w = grey.shape
    qimg = QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    physical = max(16, int(round(side_px * device_pixel_ratio)))
    pix = QPixmap.fromImage(qimg).scaled(physical, physical, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
    pix.setDevicePixelRatio(device_pixel_ratio)
    return pix


class QtXRayMonitor(QLabel):
    """Shows the last X-ray image (last-image hold), with its view and orientation markers."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("xray_monitor")
        self.setMinimumSize(320, 320)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: black; color: #8a9099;")
        self._image: np.ndarray | None = None
        self._caption = ""
        self.setText("No image yet.\nPress F to take an X-ray, hold Space for fluoroscopy.")
        self.level = 128.0  # window centre on the monitor's grey scale (brightness)
        self.width_grey = 256.0  # window width (contrast: narrower is harder)
        #: perf_counter() time the monitor last painted an image (the benchmark's "on screen")
        self.painted_at_s = 0.0
        self.painted_caption = ""

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    def show_image(self, grey: np.ndarray, caption: str) -> None:
        self._image = np.ascontiguousarray(grey)
        self._caption = caption
        self._refresh()

    def set_window(self, level: float, width: float) -> None:
        """The monitor's window/level (brightness and contrast) over its 0-255 grey scale."""
        self.level = float(np.clip(level, 0.0, 255.0))
        self.width_grey = float(np.clip(width, 8.0, 512.0))
        self._refresh()

    def displayed(self) -> np.ndarray | None:
        """The image as the monitor shows it, after window/level."""
        if self._image is None:
            return None
        lo = self.level - 0.5 * self.width_grey
        out = (self._image.astype(np.float32) - lo) * (256.0 / self.width_grey)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def resizeEvent(self, event):  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._refresh()

    def _refresh(self) -> None:
        if self._image is None:
            return
        side = max(64, min(self.width(), self.height()) - 4)
        pix = grey_pixmap(self.displayed(), side, self.devicePixelRatioF())
        painter = QPainter(pix)
        painter.setPen(QColor(235, 235, 120))
        font = QFont()
        font.setPointSize(10)
        painter.setFont(font)
        painter.drawText(8, 18, self._caption)
        painter.end()
        self.setPixmap(pix)

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if self._image is not None:
            self.painted_at_s = time.perf_counter()
            self.painted_caption = self._caption  # which picture that paint showed (the bench asks)


class ImageStrip(QListWidget):
    """The attempt's images as a strip of thumbnails, newest last; clicking one emits its index
    (the window shows it on the monitor to compare with the live picture)."""

    image_chosen = pyqtSignal(int)

    def __init__(self, thumb_px: int = 64, parent=None):
        super().__init__(parent)
        self.setObjectName("image_strip")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(thumb_px, thumb_px))
        self.setFixedHeight(thumb_px + 34)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setToolTip("Images of this attempt: click one to see it again on the monitor")
        self._thumb_px = thumb_px
        self.itemClicked.connect(lambda item: self.image_chosen.emit(int(item.data(Qt.ItemDataRole.UserRole))))

    def add_image(self, index: int, grey: np.ndarray, caption: str) -> None:
        """Add image ``index`` (0-based) with a short caption under its thumbnail."""
        item = QListWidgetItem(QIcon(grey_pixmap(grey, self._thumb_px, self.devicePixelRatioF())), f"#{index + 1}")
        item.setToolTip(caption)
        item.setData(Qt.ItemDataRole.UserRole, index)
        self.addItem(item)
        self.scrollToItem(item)


class HelpOverlay(QWidget):
    """Every shortcut of the window over a dimmed copy of it (F1 shows and hides it; Esc or a click
    hides it), so the trainee reads the keys without leaving the attempt.

    Parameters
    ----------
    rows : list of (str, str)
        (keys, what they do).
    cover : QWidget
        The widget the overlay covers (a child of ``parent``; the overlay takes its place).
    parent : QWidget
        The overlay's parent (not a layout's or a splitter's: they would take it in as a pane).
    """

    def __init__(self, rows, cover: QWidget, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("help_overlay")
        self.cover = cover
        self.rows = list(rows)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.follow()
            self.raise_()
            self.show()
            self.setFocus()

    def follow(self) -> None:
        """Take the covered widget's place (after a resize)."""
        self.setGeometry(self.cover.geometry())

    def mousePressEvent(self, event):  # noqa: N802 (Qt name)
        self.hide()

    def keyPressEvent(self, event):  # noqa: N802 (Qt name)
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_F1):
            self.hide()
        else:
            super().keyPressEvent(event)

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(12, 14, 18, 238))
        font = QFont()
        font.setPointSize(11)
        p.setFont(font)
        metrics = p.fontMetrics()
        line_px = metrics.height() + 6
        # two columns when the window is wide enough for them
        columns = 2 if self.width() > 1100 else 1
        per_column = -(-len(self.rows) // columns)
        column_px = (self.width() - 60) // columns
        key_px = min(230, column_px // 3)
        title = QFont(font)
        title.setPointSize(14)
        title.setBold(True)
        p.setFont(title)
        p.setPen(QColor(255, 220, 120))
        p.drawText(30, 40, "Keyboard and mouse  (F1 or Esc to close)")
        wrap = Qt.TextFlag.TextWordWrap
        p.setFont(font)
        for col in range(columns):
            x = 30 + col * column_px
            y = 64.0
            for keys, action in self.rows[col * per_column:(col + 1) * per_column]:
                action_px = column_px - key_px - 16
                height = max(line_px, metrics.boundingRect(0, 0, action_px, 10_000, wrap, action).height() + 4)
                p.setPen(QColor(255, 220, 120))
                p.drawText(QRectF(x, y, key_px - 10, height), wrap, keys)
                p.setPen(QColor(230, 232, 236))
                p.drawText(QRectF(x + key_px, y, action_px, height), wrap, action)
                y += height


class QtTrace(QWidget):
    """A live trace of needle readings (the syringe's pressure, the force felt) against the needle's
    depth or the attempt's time.

    Parameters
    ----------
    title : str
        What is plotted, with its unit (drawn under the plot).
    y_max : float
        Top of the vertical axis (readings above it are drawn at the top).
    y_ticks : tuple of float
    colour : tuple of int
        Line colour (sRGB).
    """

    def __init__(self, title: str, y_max: float, y_ticks: tuple[float, ...], colour: tuple[int, int, int],
                 parent=None):
        super().__init__(parent)
        self.setMinimumHeight(80)
        self.title = title
        self.y_max = y_max
        self.y_ticks = y_ticks
        self.colour = QColor(*colour)
        self.readings: list[tuple[float, float]] = []  # (depth mm, value)
        self.times_s: list[float] = []
        self.against = "depth"

    def set_readings(self, readings, times_s=None) -> None:
        """Readings as (depth mm, value), with the time of each (seconds) if known."""
        self.readings = [(float(d), float(v)) for d, v in readings]
        self.times_s = [float(t) for t in times_s] if times_s is not None else []
        self.update()

    def set_against(self, against: str) -> None:
        """Plot against ``"depth"`` or ``"time"``."""
        self.against = against
        self.update()

    def points(self) -> list[tuple[float, float]]:
        """(x, value) pairs as plotted: x is the depth (mm) or the time (s)."""
        if self.against == "time" and len(self.times_s) == len(self.readings):
            return [(t, v) for t, (_, v) in zip(self.times_s, self.readings, strict=True)]
        return list(self.readings)

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(38, 8, -8, -22)
        p.fillRect(self.rect(), QColor(24, 26, 30))
        p.setPen(QColor(90, 96, 106))
        p.drawRect(rect)
        points = self.points()
        unit = "s" if self.against == "time" else "mm"
        xs = [x for x, _ in points] or [0.0, 10.0]
        x0, x1 = min(xs), max(max(xs), min(xs) + 10.0)
        p.setPen(QColor(150, 156, 166))
        for value in self.y_ticks:
            y = rect.bottom() - value / self.y_max * rect.height()
            p.drawText(QPointF(2, y + 4), f"{value:g}")
        p.drawText(QPointF(rect.left(), rect.bottom() + 16), f"{x0:.0f} {unit}")
        p.drawText(QPointF(rect.right() - 44, rect.bottom() + 16), f"{x1:.0f} {unit}")
        p.drawText(QPointF(rect.left() + 60, rect.bottom() + 16), f"{self.title} vs {self.against}")
        if not points:
            return

        def xy(x, value):
            return QPointF(rect.left() + (x - x0) / (x1 - x0) * rect.width(),
                           rect.bottom() - min(value, self.y_max) / self.y_max * rect.height())

        path = QPainterPath()
        for i, (x, value) in enumerate(points):
            path.moveTo(xy(x, value)) if i == 0 else path.lineTo(xy(x, value))
        p.setPen(QPen(self.colour, 2))
        p.drawPath(path)
        p.setBrush(QColor(255, 200, 60))
        for x, value in points[-60:]:
            p.drawEllipse(xy(x, value), 2.5, 2.5)


def pressure_trace() -> QtTrace:
    """The loss-of-resistance syringe's pressure (mmHg)."""
    trace = QtTrace("syringe pressure (mmHg)", 600.0, (0, 200, 400, 600), (90, 200, 255))
    trace.setObjectName("pressure_trace")
    return trace


def force_trace() -> QtTrace:
    """The force felt pushing the needle (N)."""
    trace = QtTrace("force felt advancing (N)", 20.0, (0, 5, 10, 15, 20), (240, 140, 90))
    trace.setObjectName("force_trace")
    return trace
