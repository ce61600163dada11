"""Orders from a RIS/HIS over HL7 v2 (MLLP): ``listener.py`` frames and answers, ``message.py``
decodes and acknowledges, ``orders.py`` maps orders and patient updates to the worklist."""
