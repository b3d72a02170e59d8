"""Small Qt widgets of the training window: the X-ray monitor and the syringe pressure trace."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPixmap
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget


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
        self.setText("No image yet.\nPress F (or Space) to take an X-ray.")

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    def show_image(self, grey: np.ndarray, caption: str) -> None:
        self._image = np.ascontiguousarray(grey)
        self._caption = caption
        self._refresh()

    def resizeEvent(self, event):  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._refresh()

    def _refresh(self) -> None:
        if self._image is None:
            return
        h, w = self._image.shape
        qimg = QImage(self._image.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        side = max(64, min(self.width(), self.height()) - 4)
        pix = QPixmap.fromImage(qimg).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
        painter = QPainter(pix)
        painter.setPen(QColor(235, 235, 120))
        font = QFont()
        font.setPointSize(10)
        painter.setFont(font)
        painter.drawText(8, 18, self._caption)
        painter.end()
        self.setPixmap(pix)


class QtPressureTrace(QWidget):
    """The loss-of-resistance syringe: pressure readings against needle depth."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("pressure_trace")
        self.setMinimumHeight(140)
        self.readings: list[tuple[float, float]] = []

    def set_readings(self, readings: list[tuple[float, float]]) -> None:
        self.readings = list(readings)
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(38, 8, -8, -22)
        p.fillRect(self.rect(), QColor(24, 26, 30))
        p.setPen(QColor(90, 96, 106))
        p.drawRect(rect)
        max_p = 600.0
        depths = [d for d, _ in self.readings] or [0.0, 10.0]
        d0, d1 = min(depths), max(max(depths), min(depths) + 10.0)
        p.setPen(QColor(150, 156, 166))
        for value in (0, 200, 400, 600):
            y = rect.bottom() - value / max_p * rect.height()
            p.drawText(QPointF(2, y + 4), f"{value}")
        p.drawText(QPointF(rect.left(), rect.bottom() + 16), f"{d0:.0f} mm")
        p.drawText(QPointF(rect.right() - 44, rect.bottom() + 16), f"{d1:.0f} mm")
        p.drawText(QPointF(rect.left() + 60, rect.bottom() + 16), "syringe pressure (mmHg) vs depth")
        if not self.readings:
            return
        path = QPainterPath()
        for i, (d, pressure) in enumerate(self.readings):
            x = rect.left() + (d - d0) / (d1 - d0) * rect.width()
            y = rect.bottom() - min(pressure, max_p) / max_p * rect.height()
            if i == 0:
                path.moveTo(x, y)
            else:
                path.lineTo(x, y)
        p.setPen(QPen(QColor(90, 200, 255), 2))
        p.drawPath(path)
        p.setBrush(QColor(255, 200, 60))
        for d, pressure in self.readings:
            x = rect.left() + (d - d0) / (d1 - d0) * rect.width()
            y = rect.bottom() - min(pressure, max_p) / max_p * rect.height()
            p.drawEllipse(QPointF(x, y), 3, 3)
