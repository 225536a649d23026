"""A small Flask app that runs unchanged under gunicorn and `terrarium serve`.

    gunicorn --chdir examples/flask-app app:app                 # as usual
    build/terrarium serve examples/flask-app/modules.toml       # a fresh sandbox per request
"""
from flask import Flask, jsonify, make_response, redirect, render_template, request, url_for

app = Flask(__name__)

# A module-level counter: under gunicorn it counts the requests a worker has
# served; under Terrarium every request starts from the snapshot, so it is 1.
REQUESTS_SEEN = 0
NOTES = [{"id": 1, "text": "first note"}]


def seen():
    global REQUESTS_SEEN
    REQUESTS_SEEN += 1
    return REQUESTS_SEEN


@app.route("/")
def index():
    return render_template("index.html", notes=NOTES, count=seen(),
                           hello_url=url_for("hello", name="world"))


@app.route("/hello")
def hello_world():
    return "Hello, World!"


@app.route("/hello/<name>")
def hello(name):
    return render_template("hello.html", name=name)


@app.route("/count")
def requests_seen():
    return jsonify(requests=seen())


@app.route("/api/notes", methods=["GET", "POST"])
def notes():
    if request.method == "POST":
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return jsonify(error="expected a JSON object with a string 'text'"), 400
        note = {"id": len(NOTES) + 1, "text": payload["text"]}
        NOTES.append(note)
        return jsonify(note), 201
    return jsonify(notes=NOTES, total=len(NOTES))


@app.route("/api/notes/<int:note_id>")
def note(note_id):
    for item in NOTES:
        if item["id"] == note_id:
            return jsonify(item)
    return jsonify(error="no note %d" % note_id), 404


@app.route("/echo", methods=["POST"])
def echo():
    return jsonify(request.get_json(force=True))


@app.route("/form", methods=["GET", "POST"])
def form():
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        if not name:
            return render_template("form.html", error="name is required"), 422
        response = redirect(url_for("hello", name=name))
        response.set_cookie("name", name)
        return response
    return render_template("form.html", error=None)


@app.route("/whoami")
def whoami():
    name = request.cookies.get("name")
    response = make_response(jsonify(name=name))
    response.set_cookie("seen", "1")
    response.set_cookie("theme", "dark")
    return response


@app.route("/old")
def old():
    return redirect(url_for("index"), code=301)


@app.route("/fail")
def fail():
    raise RuntimeError("this handler fails on purpose")
