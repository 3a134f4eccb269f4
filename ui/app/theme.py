"""Dark by default (studios are dim, and sample browsers are dark), light on request: a palette plus a
small stylesheet for the few things palettes cannot say (section titles, the banner, job rows).

Why `QComboBox::item:selected`: a styled combo box's popup paints its rows as menu items, the selected one in
the palette's highlighted text (near-black) but on the list's own background, not the highlight, so in the
dark theme the current choice was a blank line; the rule gives that row the accent behind its words."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#ff8a3d"

DARK = {"window": "#16181d", "base": "#0f1115", "alt": "#1d2027", "text": "#e6e8ee", "dim": "#8a90a0",
        "button": "#22262e", "border": "#2a2f39", "link": "#ffb27a"}
LIGHT = {"window": "#f1f2f5", "base": "#ffffff", "alt": "#e8eaef", "text": "#1b1e25", "dim": "#6b7180",
         "button": "#e2e5eb", "border": "#c9cdd6", "link": "#a04a00"}


def apply_theme(app: QApplication, name: str = "dark") -> None:
    colours = LIGHT if name == "light" else DARK
    app.setStyle("Fusion")
    palette = QPalette()
    role = QPalette.ColorRole
    palette.setColor(role.Window, QColor(colours["window"]))
    palette.setColor(role.WindowText, QColor(colours["text"]))
    palette.setColor(role.Base, QColor(colours["base"]))
    palette.setColor(role.AlternateBase, QColor(colours["alt"]))
    palette.setColor(role.Text, QColor(colours["text"]))
    palette.setColor(role.Button, QColor(colours["button"]))
    palette.setColor(role.ButtonText, QColor(colours["text"]))
    palette.setColor(role.Highlight, QColor(ACCENT))
    palette.setColor(role.HighlightedText, QColor("#111111"))
    palette.setColor(role.ToolTipBase, QColor(colours["alt"]))
    palette.setColor(role.ToolTipText, QColor(colours["text"]))
    palette.setColor(role.PlaceholderText, QColor(colours["dim"]))
    palette.setColor(role.Link, QColor(colours["link"]))  # links in labels (a loop's parent): readable on Window
    palette.setColor(role.LinkVisited, QColor(colours["link"]))
    palette.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor(colours["dim"]))
    palette.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor(colours["dim"]))
    app.setPalette(palette)
    app.setStyleSheet(f"""
        QLabel#section {{ color: {colours['dim']}; font-weight: 600; letter-spacing: 1px; padding-top: 6px; }}
        QLabel#title {{ font-size: 15px; font-weight: 700; }}
        QLabel#dim, QLabel#job_state {{ color: {colours['dim']}; }}
        QFrame#banner {{ background: #5a2a12; border: 1px solid {ACCENT}; border-radius: 4px; }}
        QFrame#banner QLabel {{ color: #ffe2cc; }}
        QFrame#job_row {{ background: {colours['alt']}; border-radius: 4px; }}
        QFrame#panel {{ background: {colours['window']}; }}
        QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox {{ padding: 4px 6px; border: 1px solid {colours['border']};
            border-radius: 4px; background: {colours['base']}; }}
        QComboBox::item:selected {{ background: {ACCENT}; color: #111111; }}
        QLineEdit#prompt {{ font-size: 14px; padding: 7px 8px; }}
        QPushButton {{ padding: 5px 12px; border: 1px solid {colours['border']}; border-radius: 4px;
            background: {colours['button']}; }}
        QPushButton#generate, QPushButton#get_model {{ background: {ACCENT}; color: #111; font-weight: 700;
            border: none; }}
        QPushButton#get_model {{ padding: 8px 18px; }}
        QPushButton#generate:disabled {{ background: {colours['button']}; color: {colours['dim']}; }}
        QProgressBar {{ border: none; background: {colours['base']}; border-radius: 3px; text-align: center; }}
        QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
        QListView {{ border: 1px solid {colours['border']}; border-radius: 4px; }}
        QToolButton {{ padding: 3px 6px; border-radius: 4px; }}
        QToolButton:hover {{ background: {colours['alt']}; }}
        QToolButton#fits, QToolButton#favourites_only, QToolButton#filters_toggle, QToolButton#link {{
            border: 1px solid {colours['border']}; }}
        QToolButton#fits:checked, QToolButton#favourites_only:checked, QToolButton#filters_toggle:checked,
            QToolButton#link:checked {{ background: {ACCENT}; color: #111111; border-color: {ACCENT}; }}
        QSplitter::handle {{ background: {colours['border']}; }}
        QStatusBar {{ color: {colours['dim']}; }}
    """)
