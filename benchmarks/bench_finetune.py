"""Fine-tuning benchmark (issues 5 and 17): the product's local LoRA run on a 400-pair FAQ set, 3 epochs, default
config, on each precision path this CPU can run, the trainer as it is against the trainer before issue 17 in the
same run; optionally a naive transformers `Trainer` LoRA run on a short slice of the same data.

    .venv/bin/python benchmarks/bench_finetune.py [--paths avx2,bf16] [--trainers before,now] [--naive] [--keep]

The dataset is generated (seeded, no network) into benchmarks/.data/ (gitignored). Each run is the real command,
`assistant finetune train DATA --name NAME`, in a child process: wall time includes the start, model load, tokenising,
validation and checkpoints; peak RSS is that process's own. `avx2` caps torch's kernels at AVX2 (and so takes away
native bf16): what an AVX2-only CPU runs, with its default precision (`avx2-fp32`: with local_precision=fp32). The
naive baseline is what a user gets from the transformers docs: the same peft LoraConfig and chat-template text,
`padding="max_length"` (384) with `DataCollatorForLanguageModeling`, no length grouping, fp32. Tokens/s counts real
(unpadded) tokens. Prints a Markdown table for docs/BENCHMARKS.md on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import: nothing is ever downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA_DIR = Path(__file__).resolve().parent / ".data"

# -- the dataset: a support FAQ for the (fictional) Nimbus router line -----------------------------------------------
# Facts are tables, so every pair states its own specifics (limits per model, light colours, error codes, ISP
# settings, warranty terms per region…); questions come in several phrasings and registers, answers in 40–80 words.

MODELS = {  # name: (devices, wifi devices, VPN clients, port rules, satellites, warranty years, 5 GHz Mbit/s, price)
    "Nimbus R5": (64, 32, 4, 16, 3, 2, 1201, 89),
    "Nimbus R7": (128, 64, 8, 32, 6, 2, 2402, 149),
    "Nimbus R7 Plus": (160, 96, 10, 48, 6, 3, 2402, 199),
    "Nimbus R9 Pro": (256, 128, 16, 64, 8, 3, 5765, 349),
    "Nimbus Travel T1": (16, 16, 2, 8, 0, 1, 867, 59),
}
LIGHTS = {  # colour: (meaning, what to do)
    "solid blue": ("the router is online and everything works", "Nothing needs to be done"),
    "blinking white": ("the router is still starting up", "Wait about 90 seconds before you change anything"),
    "solid amber": ("the router has no internet connection", "Check the cable in the yellow WAN port and restart "
                    "your modem, then the router"),
    "blinking amber": ("no cable is detected in the WAN port", "Push the Ethernet cable firmly into the yellow WAN "
                       "port or try another cable"),
    "blinking purple": ("a firmware update is being installed", "Do not unplug the router; wait until the light "
                        "turns solid blue, which takes up to 5 minutes"),
    "solid red": ("the router found a hardware fault during its self-test", "Restart it once; if the light stays "
                  "red, contact support for a replacement"),
    "flashing red": ("a factory reset is in progress", "Leave the router alone for two minutes and then run the "
                     "setup wizard again"),
    "blinking green": ("WPS pairing is open for two minutes", "Press the WPS button on your printer or camera now"),
    "slow pulsing blue": ("the router is in night mode with the lights dimmed", "Change the schedule under "
                          "System → LED schedule if you prefer it always on"),
}
ERRORS = {  # app error code: (cause, fix)
    101: ("the app cannot reach the router on your local network", "connect your phone to the router's Wi-Fi and "
          "turn off mobile data while you set it up"),
    104: ("the admin password you typed is wrong", "sign in with the password you chose in the setup wizard, or "
          "reset the router if you no longer know it"),
    117: ("your Nimbus account session has expired", "sign out of the app, sign in again and re-add the router"),
    203: ("the router could not download a firmware file", "check the internet connection and retry the update "
          "from Administration → Firmware"),
    208: ("the firmware file failed its signature check", "delete the downloaded file and let the router fetch the "
          "update itself; never install files from third-party sites"),
    305: ("a mesh satellite is too far from the router", "move it halfway between the router and the dead zone, "
          "no more than two rooms away"),
    311: ("the satellite runs older firmware than the router", "update the satellite from Devices → Satellites → "
          "Update before pairing it again"),
    402: ("a port forwarding rule overlaps an existing one", "change the external port range so that no two rules "
          "share a port"),
    415: ("the VPN server's port is blocked by your provider", "choose another UDP port under Advanced → VPN server, "
          "for example 51821"),
    520: ("the USB drive uses a file system the router cannot read", "format it as exFAT or ext4 on a computer and "
          "plug it in again"),
    611: ("the parental-control profile has no devices assigned", "open the profile and add at least one device "
          "before you set a schedule"),
    702: ("the backup file belongs to a different router model", "restore only backups made on the same model, or "
          "set the router up again by hand"),
}
ISPS = {  # provider: (connection type, VLAN ID or None, MTU)
    "Helio Fibre": ("PPPoE", 10, 1492), "Brightwave": ("DHCP", None, 1500), "Northlink": ("PPPoE", 7, 1492),
    "Castellan Broadband": ("DHCP", 101, 1500), "Quanta Net": ("static IP", None, 1500),
    "Riverline": ("PPPoE", 35, 1480), "Skyport Fiber": ("DHCP", 300, 1500), "Telvara": ("PPPoE", None, 1492),
    "Aster Cable": ("DHCP", None, 1500), "Pinecrest Internet": ("PPPoE", 6, 1492),
}
REGIONS = {"the EU": 2, "the UK": 2, "the US": 1, "Canada": 1, "Australia": 2, "Japan": 1}  # extra years of law
PARTS = {  # part: (part number, price in euros, fits)
    "power adapter": ("NB-PA12", 19, "12 V / 2 A"), "wall mount kit": ("NB-WM2", 15, "screws and anchors included"),
    "replacement antenna": ("NB-AN5", 12, "sold in pairs"), "Ethernet cable": ("NB-EC15", 6, "1.5 m, Cat 6"),
    "desk stand": ("NB-DS1", 9, "holds the router upright"), "car charger": ("NB-CC5", 14, "USB-C, 5 V / 3 A"),
}
PLANS = {"Shield Basic": (2.99, "malware and phishing blocking"),
         "Shield Family": (4.99, "malware blocking, content filters and per-child reports"),
         "Shield Business": (9.99, "malware blocking, VLANs for staff and guests, and a monthly security audit")}
CATEGORIES = ["gambling sites", "social media", "online games", "video streaming", "adult content", "shopping sites"]
DEVICES = ["my laptop", "a smart TV", "my son's tablet", "an old Android phone", "a Wi-Fi printer",
           "the security camera", "my work laptop", "a games console", "the baby monitor", "my daughter's phone"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OPENERS = ["", "", "", "Hi, ", "Hello! ", "Quick question: ", "Hey there, ", "Sorry if this is obvious, but "]
CLOSERS = ["", "", "", " Thanks!", " Thanks in advance.", " Any help appreciated.", " Cheers."]


def _ask(rng: random.Random, phrasings: list[str], **facts) -> str:
    question = rng.choice(phrasings).format(**facts)
    opener = rng.choice(OPENERS)
    if opener.endswith((", ", ": ", "but ")) and not question.startswith(("I ", "I'")):
        question = question[0].lower() + question[1:]  # "Hi, how do I…", but "Hi, I bought…"
    return opener + question + rng.choice(CLOSERS)


def _fit(rng: random.Random, core: list[str], extras: list[str], low: int = 40, high: int = 80) -> str:
    """The core sentences, then extra ones in random order while the answer stays within [low, high] words."""
    words = lambda parts: len(" ".join(parts).split())
    parts = list(core)
    pool = list(extras)
    rng.shuffle(pool)
    for sentence in pool:
        if words(parts) >= low and rng.random() < 0.5:
            break
        if words(parts + [sentence]) <= high:
            parts.append(sentence)
    if not low <= words(parts) <= high:
        raise ValueError(f"answer of {words(parts)} words: {' '.join(parts)}")
    return " ".join(parts)


SUPPORT = ["If the problem persists, contact Nimbus support from the app under Help → Contact us.",
           "You can do the same from the Nimbus app on Android or iOS.",
           "The admin panel is at http://192.168.50.1 from any device on your network.",
           "Changes take effect within a minute and do not interrupt other devices.",
           "Keep the router's firmware up to date; updates install automatically at night by default.",
           "Write down your current settings first so you can restore them if needed."]


def topic_light(rng):
    model, (colour, (meaning, action)) = rng.choice(list(MODELS)), rng.choice(list(LIGHTS.items()))
    q = _ask(rng, ["The light on my {model} is {colour}. What does that mean?", "Why is my router's status light "
                   "{colour}?", "My {model} shows a {colour} light, should I be worried?", "What does a {colour} "
                   "status light mean on the {model}?", "I'm seeing {colour} on the front of my {model}. Is that "
                   "normal?"], model=model, colour=colour)
    core = [f"A {colour} status light on the {model} means {meaning}.", f"{action}."]
    return q, _fit(rng, core, SUPPORT[:3] + SUPPORT[4:] + [f"The light sits on the front of the {model}, above the Nimbus logo.",
                                         "Lights can be dimmed or switched off at night under System → LED "
                                         "schedule, which does not change their meaning.",
                                         "A full list of light colours is on the quick-start card."])


def topic_error(rng):
    code, (cause, fix) = rng.choice(list(ERRORS.items()))
    doing = rng.choice(["adding a satellite", "signing in", "updating", "saving a setting", "opening the app",
                        "restoring a backup", "setting up parental controls"])
    q = _ask(rng, ["The Nimbus app says error E{code} while {doing}. How do I fix it?", "What is error E{code}?",
                   "I keep getting E{code} when {doing} — what does it mean?", "Error code E{code} on my router app,"
                   " help?", "How can I get rid of error E{code}?"], code=code, doing=doing)
    core = [f"Error E{code} means that {cause}.", f"To fix it, {fix}."]
    return q, _fit(rng, core, SUPPORT[:3] + [f"E{code} does not harm your settings or your connection.",
                                         "Error codes and their fixes are also listed in the app under Help → "
                                         "Error codes.", "Update the Nimbus app from your app store first: older "
                                         "versions show some errors wrongly."])


def topic_limit(rng):
    model = rng.choice(list(MODELS))
    devices, wifi, vpn, rules, sats, *_ = MODELS[model]
    feature, value, where = rng.choice([("devices", f"{devices} connected devices, of which {wifi} over Wi-Fi at "
                                         "the same time", "Devices → Overview"),
                                        ("VPN clients", f"{vpn} simultaneous WireGuard VPN clients", "Advanced → VPN "
                                         "server"),
                                        ("port forwarding rules", f"{rules} port forwarding rules", "Advanced → Port "
                                         "forwarding"),
                                        ("mesh satellites", f"{sats} Nimbus Mesh satellites" if sats else "no mesh "
                                         "satellites, because it is a travel router", "Devices → Add satellite")])
    q = _ask(rng, ["How many {feature} does the {model} support?", "What's the maximum number of {feature} on a "
                   "{model}?", "Is there a limit on {feature} for the {model}?", "Can the {model} handle a lot of "
                   "{feature}?"], feature=feature, model=model)
    other = rng.choice([m for m in MODELS if m != model])
    core = [f"The {model} supports up to {value}.", f"You manage them in the admin panel under {where}."]
    return q, _fit(rng, core, SUPPORT[1:4] + [f"If you need more, the {other} is rated for different limits; "
                                            "compare the models on the Nimbus website.",
                                            "Going over the limit does not damage anything: the router simply "
                                            "refuses the new entry with a message."])


def topic_isp(rng):
    isp, (kind, vlan, mtu) = rng.choice(list(ISPS.items()))
    model = rng.choice(list(MODELS)[:4])
    q = _ask(rng, ["How do I set up my {model} with {isp}?", "What settings does {isp} need on a Nimbus router?",
                   "I'm switching to {isp}. What do I enter on the {model}?", "Does the {model} work with {isp}, "
                   "and how do I connect it?"], isp=isp, model=model)
    core = [f"{isp} uses {kind}" + (f" on VLAN ID {vlan}" if vlan else " without a VLAN tag") + f" and an MTU of "
            f"{mtu}.", f"On the {model}, open Internet → Connection type, choose {kind}"
            + (", enter the VLAN ID" if vlan else "") + " and save."]
    if kind == "PPPoE":
        core.append(f"Type the user name and password from your {isp} welcome letter.")
    return q, _fit(rng, core, SUPPORT[:3] + ["The router restarts its WAN connection, which takes about 30 seconds.",
                                             "If the light stays amber, check the settings with your provider's "
                                             "support line."])


def topic_warranty(rng):
    model, region = rng.choice(list(MODELS)), rng.choice(list(REGIONS))
    years, months = max(MODELS[model][5], REGIONS[region]), rng.randint(2, 44)
    problem = rng.choice(["it stopped powering on", "the 5 GHz band disappeared", "one LAN port died",
                          "the power adapter broke", "it reboots every few hours"])
    q = _ask(rng, ["I bought a {model} in {region} {months} months ago and {problem}. Is it covered?", "Is my {model}"
                   " still under warranty? I got it {months} months ago in {region}; {problem}.", "{months} months "
                   "old {model} from {region}, {problem} — can I get a replacement?"], model=model, region=region,
             months=months, problem=problem)
    covered = months <= years * 12
    core = [f"In {region} the {model} has a {years}-year warranty against hardware defects.",
            f"At {months} months your router is " + ("still covered." if covered else "no longer covered, sorry.")]
    core.append("Request a replacement at support.nimbus.example/warranty with your receipt and the serial number "
                "from the label." if covered else "We can still repair it for a flat fee of 39 euros; start at "
                "support.nimbus.example/repair.")
    return q, _fit(rng, core, ["Damage from drops, water or power surges is not covered.", "Keep the receipt: "
                               "it is the proof of the purchase date.", "You do not need the original box for a "
                               "warranty claim."])


def topic_part(rng):
    part, (number, price, note) = rng.choice(list(PARTS.items()))
    model = rng.choice(list(MODELS))
    q = _ask(rng, ["Where can I buy a replacement {part} for the {model}?", "How much is a new {part} for my {model}?",
                   "I lost the {part} of my {model}. Can I order one?", "Do you sell a spare {part} for the {model}?"],
             part=part, model=model)
    core = [f"Yes, the {part} for the {model} is part number {number} and costs {price} euros ({note}).",
            "Order it from the Nimbus store at store.nimbus.example or from the app under Help → Accessories."]
    return q, _fit(rng, core, ["Shipping is free for orders over 25 euros and takes two to four working days.",
                               "Use only original Nimbus parts: third-party ones are not covered by the warranty.",
                               "Retailers that sell Nimbus routers can order the part for you too.",
                               f"The part number is also printed in the {model}'s manual, in the accessories "
                               "section."])


def topic_plan(rng):
    plan, (price, what) = rng.choice(list(PLANS.items()))
    model = rng.choice(list(MODELS))
    q = _ask(rng, ["What does {plan} include on the {model}?", "Is {plan} worth it for my {model}?", "How much does "
                   "{plan} cost per month for a {model}?", "What do I get with a {plan} subscription on my {model}?"],
             plan=plan, model=model)
    core = [f"{plan} costs {price} euros a month, or ten times that for a year paid up front.", f"It adds {what}.",
            f"It works on the {model} and every other current Nimbus router."]
    return q, _fit(rng, core, ["The first 30 days are free and you can cancel any time in the app.",
                               "Subscriptions are managed in the Nimbus app under Account → Shield.",
                               "Without a subscription the router still gets every firmware and security update."])


def topic_parental(rng):
    category, device, hours = rng.choice(CATEGORIES), rng.choice(DEVICES), rng.choice([1, 2, 3, 4])
    q = _ask(rng, ["Can I block {category} on {device}?", "How do I stop {device} from reaching {category}?",
                   "Is it possible to limit {device} to {hours} hours a day and block {category}?"],
             category=category, device=device, hours=hours)
    core = ["Yes. Under Security → Parental controls, create a profile, add the device to it and tick "
            f"{category} under Content filter.", f"In the same profile you can set a daily limit, for example {hours} "
            "hours, and a bedtime."]
    return q, _fit(rng, core, SUPPORT[:2] + ["Filtering uses the Nimbus SafeDNS service, so it works for every app "
                                            "and browser on the device.", "A device in a profile shows a lock icon in "
                                            "the device list."])


def topic_schedule(rng):
    model, day, hour = rng.choice(list(MODELS)[:4]), rng.choice(DAYS), rng.randint(1, 5)
    what = rng.choice(["restart", "switch off the guest Wi-Fi", "turn off the 2.4 GHz band", "check for updates"])
    q = _ask(rng, ["How do I make my {model} {what} every {day} at {hour} a.m.?", "Can the {model} {what} on a "
                   "schedule, say {day}s at {hour}:00?", "Is there a way to {what} automatically each {day} at {hour} on my "
                   "{model}?"],
             model=model, what=what, day=day, hour=hour)
    core = [f"Yes. In the admin panel open System → Schedules, choose '{what}', pick {day} and {hour}:00, and save.",
            "The router keeps its own clock in sync, so the schedule follows daylight saving time."]
    return q, _fit(rng, core, SUPPORT[1:4] + ["You can add up to ten schedules and pause any of them with its "
                                            "switch.", "Scheduled actions are listed in the event log under "
                                            "System → Log."])


def topic_mesh(rng):
    area, floors = rng.choice([80, 120, 150, 200, 250, 300]), rng.choice(["one floor", "two floors", "three floors"])
    model = rng.choice(list(MODELS)[:4])
    needed = min(MODELS[model][4], max(0, round(area / 100) + ["one", "two", "three"].index(floors.split()[0]) - 1))
    q = _ask(rng, ["How many mesh satellites do I need for a {area} m² home on {floors} with the {model}?",
                   "My house is {area} square metres over {floors}. Is one {model} enough?", "What mesh setup do you "
                   "recommend for {area} m² and {floors} with a {model}?"], area=area, floors=floors, model=model)
    core = [f"For about {area} m² on {floors}, the {model} covers the home " +
            ("on its own, without satellites." if not needed else f"best with {needed} Nimbus Mesh satellite"
             f"{'s' if needed > 1 else ''}."), "If a corner stays weak, add a satellite later." if not needed else
            "Place each satellite about halfway between the router and the area with weak signal, no more than two "
            "rooms away."]
    return q, _fit(rng, core, ["Add satellites in the Nimbus app under Devices → Add satellite.",
                               "Thick walls and floor heating reduce range, so you may need one more.",
                               "The app's signal test shows whether a satellite's position is good."])


def topic_speed(rng):
    model, device = rng.choice(list(MODELS)), rng.choice(DEVICES)
    top = MODELS[model][6]
    q = _ask(rng, ["Why is Wi-Fi slow on {device} with my {model}?", "{device} only gets a fraction of my plan's "
                   "speed over Wi-Fi on the {model}. Why?", "What is the fastest Wi-Fi speed the {model} can do?"],
             model=model, device=device)
    core = [f"The {model} reaches up to {top} Mbit/s on 5 GHz, but a single device gets less: its own Wi-Fi chip, "
            "distance and walls set the limit.", "Connect to the 5 GHz network, move closer, and run the speed test "
            "in the Nimbus app."]
    return q, _fit(rng, core, ["Turn on automatic channel selection under Wireless → Channel → Auto.",
                               "Older 2.4 GHz-only devices rarely exceed 100 Mbit/s.", "For the full speed of "
                               "your plan, use an Ethernet cable.", SUPPORT[4]])


CHANGES = ["added a WireGuard VPN server", "added guest network schedules", "improved 5 GHz throughput by about "
           "12 %", "fixed bedtime schedules that ignored daylight saving time", "fixed a UPnP security vulnerability",
           "made WPA3 the default for new setups", "added automatic nightly channel selection", "fixed the status "
           "light staying amber after a PPPoE reconnect", "added exFAT support for USB drives", "fixed satellites "
           "dropping off the mesh after a power cut", "reduced start-up time to about 60 seconds", "added IPv6 "
           "firewall rules"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def topic_firmware(rng):
    model = rng.choice(list(MODELS))
    release = f"{rng.randint(2, 3)}.{rng.randint(0, 4)}.{rng.randint(0, 9)}"
    first, second = rng.sample(CHANGES, 2)
    when = f"{rng.choice(MONTHS)} {rng.choice([2025, 2026])}"
    q = _ask(rng, ["What changed in firmware {release} for the {model}?", "Should I install firmware {release} on my "
                   "{model}?", "Is {release} the latest firmware for the {model}, and what does it fix?", "What's new "
                   "in {model} firmware {release}?"], release=release, model=model)
    core = [f"Firmware {release} for the {model} came out in {when}.", f"It {first} and {second}.", "To install it, "
            "open Administration → Firmware and select Check for updates; the router restarts once, which takes up "
            "to 5 minutes."]
    return q, _fit(rng, core, ["Do not unplug the router while the light blinks purple.", "Your settings are kept "
                               "across updates.", "Full release notes are on the Nimbus website."])


def topic_guest(rng):
    model, limit, hours = rng.choice(list(MODELS)), rng.choice([5, 10, 20, 25, 50, 100]), rng.choice([1, 4, 24])
    q = _ask(rng, ["Can I limit guest Wi-Fi to {limit} Mbit/s on the {model}?", "How do I set up a guest network on "
                   "my {model} that turns off after {hours} hours?", "I want visitors on a separate network with "
                   "{limit} Mbit/s max. Possible on the {model}?"], limit=limit, hours=hours, model=model)
    core = [f"Yes. On the {model}, open Wireless → Guest network, switch it on and set the bandwidth limit to {limit} "
            "Mbit/s (any value from 1 to 100 works).", f"Under Auto-off, choose {hours} hour{'s' if hours > 1 else ''}"
            " so it switches itself off."]
    return q, _fit(rng, core, SUPPORT[1:4] + ["Guest devices reach the internet but never your own devices.",
                                            "The guest network has its own name and password; share them with a QR "
                                            "code from the app."])


TOPICS = [topic_firmware, topic_guest, topic_light, topic_error, topic_limit, topic_isp, topic_warranty, topic_part, topic_plan,
          topic_parental, topic_schedule, topic_mesh, topic_speed]


def make_dataset(pairs: int, seed: str = "bench-finetune") -> list[dict]:
    """`pairs` distinct prompt/completion pairs; the same list for the same arguments on every machine."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < pairs:
        prompt, completion = rng.choice(TOPICS)(rng)
        if prompt not in seen and completion not in seen:  # every pair its own question and its own answer
            seen.update((prompt, completion))
            rows.append({"prompt": prompt, "completion": completion})
    return rows


def write_dataset(pairs: int) -> Path:
    path = DATA_DIR / f"faq-{pairs}.jsonl"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in make_dataset(pairs)),
                    encoding="utf-8")
    return path


# -- the phases ----------------------------------------------------------------------------------------------------

# Precision paths a CPU runs: `avx2` caps torch's kernels at AVX2 (set before torch loads), as on an AVX2-only CPU;
# `bf16` is bf16 autocast, on CPUs that multiply bf16 natively.
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PATHS = {"avx2": {"ASSISTANT_LOCAL_PRECISION": "auto", **AVX2},  # what an AVX2 CPU gets by default
         "avx2-fp32": {"ASSISTANT_LOCAL_PRECISION": "fp32", **AVX2},  # the same CPU with local_precision=fp32
         "bf16": {"ASSISTANT_LOCAL_PRECISION": "bf16"}}
# The trainer before issue 17, for the same-run baseline: every row decodes its own copy of the shared prefix, and the
# output layer's logits are made whole, then the loss.
BEFORE = ("import runpy, sys, torch\n"
          "from assistant.finetune import lora, prefix\n"
          "prefix.MIN_SHARED = sys.maxsize\n"
          "lora.answer_loss_sum = lambda hidden, layer, labels: torch.nn.functional.cross_entropy(\n"
          "    layer(hidden).float(), labels, reduction='sum')\n"
          "runpy.run_module('assistant', run_name='__main__')\n")


def phase_ours(data: Path, name: str, home: Path, path: str, trainer: str) -> dict:
    """The product's own command in a child process: wall time and peak RSS are that process's alone."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASSISTANT_")}  # defaults only
    env |= {"ASSISTANT_HOME": str(home), **PATHS[path]}
    entry = ["-c", BEFORE] if trainer == "before" else ["-m", "assistant"]
    command = [sys.executable, *entry, "finetune", "train", str(data), "--name", name]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=sys.stderr)  # its progress bar and summary go to stderr
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`{' '.join(command)}` failed")
    run = home / "finetuned" / name / "run"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return {"path": path, "trainer": trainer, "seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024, "metrics": json.loads((run / "metrics.json").read_text()),
            "val_curve": [(h["step"], h["val_loss"]) for h in history if "val_loss" in h],
            "hyperparameters": json.loads((home / "finetuned" / name / "model.json").read_text())["hyperparameters"]}


def phase_naive(data: Path, steps: int, budget_s: float) -> dict:
    """A transformers `Trainer` LoRA run as the docs show it: same peft config, same split and chat-template text,
    padded to max_length, loss on every token, no length grouping, fp32. Stops after `steps` steps or once
    `budget_s` seconds have passed after the first (warm-up) step; tokens/s is measured after the first step."""
    import tempfile

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from assistant import hf
    from assistant.config import load_settings
    from assistant.finetune.datasets import load_examples, split, to_chat
    from assistant.finetune.lora_config import LoraTrainConfig
    from assistant.models.local_weights import resolve_source, weights_folder

    hf.quiet()
    config, settings = LoraTrainConfig(), load_settings()
    folder = weights_folder(resolve_source(None), settings.model_cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    train, _ = split(load_examples(data)[0], config.val_fraction, config.seed)
    texts = [tokenizer.apply_chat_template(to_chat(e)["messages"], tokenize=False) for e in train]
    encoded = tokenizer(texts, padding="max_length", max_length=config.max_length, truncation=True)
    dataset = [{"input_ids": ids, "attention_mask": mask}
               for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
                           LoraConfig(task_type="CAUSAL_LM", r=config.r, lora_alpha=config.alpha,
                                      lora_dropout=config.dropout, target_modules=list(config.target_modules)))
    clock = {"tokens": 0, "steps": 0, "losses": []}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:  # the first step pays one-off costs; measure from its end
                clock.update(start=time.perf_counter(), cpu_start=time.process_time(), tokens=0)
            else:
                clock["steps"] += 1
                clock["seconds"] = time.perf_counter() - clock["start"]
                clock["cpu_s"] = time.process_time() - clock["cpu_start"]
                if clock["seconds"] >= budget_s:  # never reset it: the default callback stops at max_steps
                    control.should_training_stop = True

    class CountingTrainer(Trainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            clock["tokens"] += int(inputs["attention_mask"].sum())  # real tokens, not padding
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            clock["losses"].append(float(loss.detach()))
            return loss

    with tempfile.TemporaryDirectory(prefix="bench-naive-") as out:
        arguments = TrainingArguments(output_dir=out, per_device_train_batch_size=config.batch_size,
                                      learning_rate=config.learning_rate, warmup_steps=config.warmup_ratio,
                                      max_steps=steps, save_strategy="no", report_to="none", use_cpu=True,
                                      logging_steps=10, disable_tqdm=True, seed=config.seed)
        CountingTrainer(model=model, args=arguments, train_dataset=dataset,
                        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[Clock()]).train()
    return {"steps": clock["steps"], "seconds": clock["seconds"], "cpu_s": clock["cpu_s"], "tokens": clock["tokens"],
            "padded_tokens": clock["steps"] * config.batch_size * config.max_length,
            "first_loss": clock["losses"][0], "last_loss": clock["losses"][-1]}


def dataset_stats(data: Path, home: Path) -> dict:
    from transformers import AutoTokenizer

    from assistant.config import load_settings
    from assistant.finetune.datasets import load_examples, split
    from assistant.finetune.lora_config import LoraTrainConfig
    from assistant.finetune.lora_data import batches, encode
    from assistant.models.local_weights import resolve_source, weights_folder

    config = LoraTrainConfig()
    tokenizer = AutoTokenizer.from_pretrained(weights_folder(resolve_source(None),
                                                             load_settings(home=home).model_cache_dir))
    examples = load_examples(data)[0]
    train, val = split(examples, config.val_fraction, config.seed)
    items = [encode(tokenizer, e, config.max_length) for e in train]
    words = [len(e.completion.split()) for e in examples]
    # What our length-grouped batches pad: each batch to its own longest example, over all epochs.
    groups = [b for epoch in range(config.epochs) for b in batches(items, config.batch_size, config.seed, epoch)]
    padded = sum(len(b) * max(len(items[i].input_ids) for i in b) for b in groups)
    return {"pairs": len(examples), "train": len(train), "val": len(val), "words": (min(words), sum(words) /
            len(words), max(words)), "tokens": sum(len(i.input_ids) for i in items), "answer_tokens":
            sum(i.trained_tokens for i in items), "longest": max(len(i.input_ids) for i in items),
            "padding": padded / (config.epochs * sum(len(i.input_ids) for i in items))}


# -- the report ----------------------------------------------------------------------------------------------------

def machine() -> str:
    cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("model name"))
    from assistant.cpu import has_native_bf16

    return (f"{os.cpu_count()} cores ({cpu}{', native bf16' if has_native_bf16() else ''}), "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, torch {version('torch')}, transformers {version('transformers')}, "
            f"peft {version('peft')}")


PATH_NAMES = {"avx2": "AVX2 (kernels capped), default precision", "avx2-fp32": "AVX2 (kernels capped), "
              "local_precision=fp32", "bf16": "bf16 autocast"}
TRAINER_NAMES = {"before": "before #17", "now": "now"}


def table(stats: dict, runs: list[dict], naive: dict | None, loads: list[float], goal_s: float) -> str:
    h = runs[0]["hyperparameters"]
    lines = [f"### Fine-tuning, {datetime.date.today().isoformat()}", "",
             f"{machine()}; load average {loads[0]:.1f} at start, {loads[1]:.1f} at the end.",
             f"Data: {stats['pairs']} generated FAQ pairs ({stats['train']} train / {stats['val']} validation, the "
             f"product's split), answers {stats['words'][0]}–{stats['words'][2]} words (mean "
             f"{stats['words'][1]:.0f}); {stats['tokens']:,} training tokens an epoch ({stats['answer_tokens']:,} of "
             f"them answer tokens), longest example {stats['longest']} tokens.",
             f"Config (product defaults): r={h['r']}, alpha={h['alpha']}, {'+'.join(h['target_modules'])}, "
             f"lr {h['learning_rate']:g}, {h['epochs']} epochs, batch {h['batch_size']}, max_length "
             f"{h['max_length']}. Each row is `assistant finetune train` in its own process, one after another.", "",
             "| path | trainer | wall time (start to exit) | training loop | tokens/s | CPU s | peak RSS | validation "
             "loss: start → each epoch | best (step) |", "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for run in runs:
        m = run["metrics"]
        curve = " → ".join(f"{loss:.4f}" for _, loss in run["val_curve"])
        lines.append(f"| {PATH_NAMES[run['path']]} | {TRAINER_NAMES[run['trainer']]} | {run['seconds']:.0f} s "
                     f"({run['seconds'] / 60:.1f} min) | {m['seconds']:.0f} s, {m['steps']} steps | "
                     f"{m['tokens_per_s']:.0f} | {run['cpu_s']:.0f} | {run['rss']:.0f} MiB | {curve} | "
                     f"{m['best_val_loss']:.4f} ({m['best_step']}) |")
    by = {(run["path"], run["trainer"]): run for run in runs}
    for path in dict.fromkeys(run["path"] for run in runs):
        now, before = by.get((path, "now")), by.get((path, "before"))
        if now and before:
            lines.append(f"| {PATH_NAMES[path]} | **now / before** | **{before['seconds'] / now['seconds']:.2f}× "
                         f"faster** | | {now['metrics']['tokens_per_s'] / before['metrics']['tokens_per_s']:.2f}× | | "
                         f"{now['rss'] / before['rss']:.2f}× | best differs by "
                         f"{now['metrics']['best_val_loss'] - before['metrics']['best_val_loss']:+.4f} | |")
    if naive:
        first = next(run for run in runs if run["trainer"] == "now")
        m = first["metrics"]
        naive_tps = naive["tokens"] / naive["seconds"]
        lines += ["", "| short slice, same data and LoRA config | tokens/s (real tokens) | padded tokens per real one "
                  "| |", "|---|---:|---:|---|",
                  f"| naive `Trainer` (pad to {h['max_length']}, no grouping, fp32), {naive['steps']} steps after "
                  f"one warm-up, {naive['seconds']:.0f} s | {naive_tps:.0f} | "
                  f"{naive['padded_tokens'] / naive['tokens']:.2f} | peak RSS {naive['rss']:.0f} MiB; loss "
                  f"{naive['first_loss']:.2f} → {naive['last_loss']:.2f} (on all tokens) |",
                  f"| ours, {PATH_NAMES[first['path']]} (whole training loop) | {m['tokens_per_s']:.0f} | "
                  f"{stats['padding']:.2f} | |",
                  f"| **ratio ours / naive** | **{m['tokens_per_s'] / naive_tps:.2f}×** | | |"]
    lines.append("")
    for run in runs:
        if run["trainer"] == "now":
            verdict = "met" if run["seconds"] <= goal_s else "missed"
            lines.append(f"Goal, {PATH_NAMES[run['path']]}: the full run ≤ {goal_s / 60:.0f} minutes on 2 cores — "
                         f"**{verdict}** ({run['seconds'] / 60:.1f} min).")
    return "\n".join(lines)


def main() -> None:
    from assistant.cpu import has_native_bf16

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400, help="generated prompt/completion pairs")
    parser.add_argument("--paths", default="avx2,bf16" if has_native_bf16() else "avx2",
                        help="comma-separated: avx2 (kernels capped at AVX2, default precision), avx2-fp32 (the same "
                             "with local_precision=fp32), bf16 (autocast; needs native bf16); default: those this "
                             "CPU can run")
    parser.add_argument("--trainers", default="before,now", help="comma-separated: before (the trainer before "
                                                                 "issue 17), now")
    parser.add_argument("--naive", action="store_true", help="also time the naive transformers Trainer slice")
    parser.add_argument("--naive-steps", type=int, default=40, help="most steps of the naive baseline")
    parser.add_argument("--naive-seconds", type=float, default=180, help="time budget of the naive baseline")
    parser.add_argument("--home", type=Path, help="data home (default: ASSISTANT_HOME or the per-user one)")
    parser.add_argument("--keep", action="store_true", help="keep the trained models in the registry")
    parser.add_argument("--phase", choices=["naive"], help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    from assistant.config import load_settings

    home = (args.home or load_settings().home).resolve()
    data = write_dataset(args.pairs)
    if args.phase == "naive":
        os.environ["ASSISTANT_HOME"] = str(home)
        result = phase_naive(data, args.naive_steps, args.naive_seconds)
        print(json.dumps(result | {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    from assistant.models.local_weights import resolve_source, weights_folder

    weights_folder(resolve_source(None), load_settings(home=home).model_cache_dir)  # first-time conversion, untimed
    stats = dataset_stats(data, home)
    loads = [os.getloadavg()[0]]
    runs = []
    for path in args.paths.split(","):
        for trainer in args.trainers.split(","):
            name = f"bench-finetune-{path}-{trainer}-{os.getpid()}"
            print(f"[bench] {path}, {trainer}: assistant finetune train {data} --name {name} …", file=sys.stderr,
                  flush=True)
            runs.append(phase_ours(data, name, home, path, trainer))
            if not args.keep:
                import shutil

                shutil.rmtree(home / "finetuned" / name)
    naive = None
    if args.naive:
        print("[bench] naive Trainer slice …", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase", "naive", "--home", str(home),
                               "--pairs", str(args.pairs), "--naive-steps", str(args.naive_steps),
                               "--naive-seconds", str(args.naive_seconds)], stdout=subprocess.PIPE, text=True,
                              check=True)
        naive = json.loads(done.stdout.splitlines()[-1])
    loads.append(os.getloadavg()[0])
    print(table(stats, runs, naive, loads, goal_s=600))
    print(f"\n<details><summary>raw</summary>\n\n```json\n{json.dumps({'runs': runs, 'naive': naive})}\n```\n"
          "</details>")


if __name__ == "__main__":
    main()
