"""NTU RGB+D 60/120 action class names and the two-person (interaction) classes.

Names are copied from the "Action Classes" list of shahroudy/NTURGB-D README.md, in order
(index 0 is A1), with the list's trailing full stops removed and its spelling kept (A67
"quite", the typographic apostrophes of A109, A117 and A119). NTU RGB+D 60 uses the first 60.
"""

NTU_CLASS_NAMES: tuple[str, ...] = (
    'drink water',  # A1
    'eat meal/snack',  # A2
    'brushing teeth',  # A3
    'brushing hair',  # A4
    'drop',  # A5
    'pickup',  # A6
    'throw',  # A7
    'sitting down',  # A8
    'standing up (from sitting position)',  # A9
    'clapping',  # A10
    'reading',  # A11
    'writing',  # A12
    'tear up paper',  # A13
    'wear jacket',  # A14
    'take off jacket',  # A15
    'wear a shoe',  # A16
    'take off a shoe',  # A17
    'wear on glasses',  # A18
    'take off glasses',  # A19
    'put on a hat/cap',  # A20
    'take off a hat/cap',  # A21
    'cheer up',  # A22
    'hand waving',  # A23
    'kicking something',  # A24
    'put something inside pocket / take out something from pocket',  # A25
    'hopping (one foot jumping)',  # A26
    'jump up',  # A27
    'make a phone call/answer phone',  # A28
    'playing with phone/tablet',  # A29
    'typing on a keyboard',  # A30
    'pointing to something with finger',  # A31
    'taking a selfie',  # A32
    'check time (from watch)',  # A33
    'rub two hands together',  # A34
    'nod head/bow',  # A35
    'shake head',  # A36
    'wipe face',  # A37
    'salute',  # A38
    'put the palms together',  # A39
    'cross hands in front (say stop)',  # A40
    'sneeze/cough',  # A41
    'staggering',  # A42
    'falling',  # A43
    'touch head (headache)',  # A44
    'touch chest (stomachache/heart pain)',  # A45
    'touch back (backache)',  # A46
    'touch neck (neckache)',  # A47
    'nausea or vomiting condition',  # A48
    'use a fan (with hand or paper)/feeling warm',  # A49
    'punching/slapping other person',  # A50
    'kicking other person',  # A51
    'pushing other person',  # A52
    'pat on back of other person',  # A53
    'point finger at the other person',  # A54
    'hugging other person',  # A55
    'giving something to other person',  # A56
    "touch other person's pocket",  # A57
    'handshaking',  # A58
    'walking towards each other',  # A59
    'walking apart from each other',  # A60
    'put on headphone',  # A61
    'take off headphone',  # A62
    'shoot at the basket',  # A63
    'bounce ball',  # A64
    'tennis bat swing',  # A65
    'juggling table tennis balls',  # A66
    'hush (quite)',  # A67
    'flick hair',  # A68
    'thumb up',  # A69
    'thumb down',  # A70
    'make ok sign',  # A71
    'make victory sign',  # A72
    'staple book',  # A73
    'counting money',  # A74
    'cutting nails',  # A75
    'cutting paper (using scissors)',  # A76
    'snapping fingers',  # A77
    'open bottle',  # A78
    'sniff (smell)',  # A79
    'squat down',  # A80
    'toss a coin',  # A81
    'fold paper',  # A82
    'ball up paper',  # A83
    'play magic cube',  # A84
    'apply cream on face',  # A85
    'apply cream on hand back',  # A86
    'put on bag',  # A87
    'take off bag',  # A88
    'put something into a bag',  # A89
    'take something out of a bag',  # A90
    'open a box',  # A91
    'move heavy objects',  # A92
    'shake fist',  # A93
    'throw up cap/hat',  # A94
    'hands up (both hands)',  # A95
    'cross arms',  # A96
    'arm circles',  # A97
    'arm swings',  # A98
    'running on the spot',  # A99
    'butt kicks (kick backward)',  # A100
    'cross toe touch',  # A101
    'side kick',  # A102
    'yawn',  # A103
    'stretch oneself',  # A104
    'blow nose',  # A105
    'hit other person with something',  # A106
    'wield knife towards other person',  # A107
    'knock over other person (hit with body)',  # A108
    'grab other person’s stuff',  # A109
    'shoot at other person with a gun',  # A110
    'step on foot',  # A111
    'high-five',  # A112
    'cheers and drink',  # A113
    'carry something with other person',  # A114
    'take a photo of other person',  # A115
    'follow other person',  # A116
    'whisper in other person’s ear',  # A117
    'exchange things with other person',  # A118
    'support somebody with one’s hand (someone is sick, help him to walk)',  # A119
    'finger-guessing game (playing rock-paper-scissors)',  # A120
)

# 1-based action numbers of the mutual actions (formats.md §1.1): A050–A060 and A106–A120.
NTU_TWO_PERSON_ACTIONS: frozenset[int] = frozenset(range(50, 61)) | frozenset(range(106, 121))
