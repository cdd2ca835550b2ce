"""Qt-free core of Ponder: engine, reasoning, storage, models. Never imports Qt."""
