"""Caller numbers of the shipped config/clients.yaml, as the lab's trunk sends them."""

VIP_A_MGR1 = "+79161234567"  # C-1001: A, VIP, responsible mgr1, chain vip
CLAIM_MGR2 = "+79161234568"  # C-1002: B, open claim, responsible mgr2
DELIVERY_MGR3 = "+79031112233"  # C-1003: delivery today -> mgr3 first, chain standard
C_CLIENT = "+79265554433"  # C-1005: category C -> intro recording, then the IVR menu
UNKNOWN = "+79057778899"  # C-1007: no category, no responsible: new -> operators
