"""The seed of the Python binding: a host function written in Python on the
host, called by Python in the sandbox.

    PYTHONPATH=build/python /usr/bin/python3 examples/python-host/seed_demo.py    # 33
"""
import terrarium

sandbox = terrarium.Sandbox()


@sandbox.host_function
def demo(a, b):
    return (a + b) * 11


sandbox.exec("import terrarium\nprint(terrarium.host.demo(1, 2))")
