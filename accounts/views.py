from django.contrib import messages
from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import SignupForm
from .services import account_activate, account_for_activation, account_signup_request


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("bots:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # New or taken address: the same redirect and page; only the e-mail differs.
        account_signup_request(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            workspace_name=form.cleaned_data["workspace_name"],
            base_url=request.build_absolute_uri("/").rstrip("/"),
        )
        return redirect("accounts:signup_done")
    return render(request, "accounts/signup.html", {"form": form})


def signup_done(request):
    return render(request, "accounts/signup_done.html")


@require_http_methods(["GET", "POST"])
def activate(request, uidb64: str, token: str):
    """GET shows a button and POST activates: mail scanners that open links do not log in."""
    user = account_for_activation(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "accounts/activate.html", {"validlink": False}, status=400)
    if request.method == "POST":
        account_activate(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to AskHandle! Create your first bot to get started.")
        return redirect("bots:list")
    return render(request, "accounts/activate.html", {"validlink": True, "email": user.email})
